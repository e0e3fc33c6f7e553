import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from recsys.v1 import recsys_pb2 as pb
from recsys.v1 import recsys_pb2_grpc as pb_grpc

from serving.client import AsyncRecsysClient, Event, RecsysClient
from serving.client.types import backoff_delays, event_type, feedback_request
from serving.domain import EventType


class Failure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class FlakyMethod:
    """Fails with ``codes`` in turn, then answers."""

    def __init__(self, *codes: grpc.StatusCode) -> None:
        self.codes = list(codes)
        self.calls = 0

    def __call__(self, request, timeout, metadata):
        self.calls += 1
        assert timeout == 5.0
        if self.codes:
            raise Failure(self.codes.pop(0))
        return "answer"


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda _: None)
    with RecsysClient("127.0.0.1:1", retries=3) as sdk:
        yield sdk


def test_unavailable_is_retried_with_backoff(client):
    method = FlakyMethod(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    assert client._call(method, object()) == "answer"
    assert method.calls == 3
    assert backoff_delays(4) == [0.1, 0.2, 0.4, 0.8]


def test_other_errors_and_exhausted_retries_are_raised(client):
    method = FlakyMethod(grpc.StatusCode.INVALID_ARGUMENT)
    with pytest.raises(Failure):
        client._call(method, object())
    assert method.calls == 1
    method = FlakyMethod(*[grpc.StatusCode.UNAVAILABLE] * 4)
    with pytest.raises(Failure):
        client._call(method, object())
    assert method.calls == 4


def test_events_get_ids_and_timestamps_that_survive_a_retry():
    event = Event("item-1", "add_to_cart", user_id="u")
    first, second = feedback_request([event]), feedback_request([event])
    assert first == second and first.events[0].event_id
    assert Event("i", "click").event_id != Event("i", "click").event_id
    assert event_type("EVENT_TYPE_PURCHASE") is EventType.PURCHASE


class FlakyRecommender(pb_grpc.RecommenderServicer):
    """A real gRPC server's LogFeedback that answers UNAVAILABLE ``failures`` times first,
    recording the event ids of every attempt."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: list[list[str]] = []

    async def LogFeedback(self, request, context):
        self.attempts.append([event.event_id for event in request.events])
        if len(self.attempts) <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "database restarting")
        return pb.LogFeedbackResponse(accepted=len(request.events), duplicates=0)


@contextlib.asynccontextmanager
async def serving(servicer: FlakyRecommender) -> AsyncIterator[str]:
    """``servicer`` on a real gRPC server at a free port; yields its address."""
    server = grpc.aio.server()
    pb_grpc.add_RecommenderServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_the_asyncio_client_retries_unavailable_with_the_same_event_ids():
    servicer = FlakyRecommender(failures=2)
    events = [Event("item-1", "click", user_id="u"), Event("item-2", "like", user_id="u")]
    async with serving(servicer) as target, AsyncRecsysClient(target, retries=3) as client:
        result = await client.log_feedback(events)
    assert (result.accepted, result.duplicates) == (2, 0)
    assert servicer.attempts == [[e.event_id for e in events]] * 3


async def test_the_asyncio_client_gives_up_after_its_retries():
    servicer = FlakyRecommender(failures=10)
    async with serving(servicer) as target, AsyncRecsysClient(target, retries=2) as client:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await client.log_feedback([Event("item-1", "click", user_id="u")])
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(servicer.attempts) == 3
