import json
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
import pytest
from recsys.v1 import recsys_pb2 as pb
from recsys.v1 import recsys_pb2_grpc as pb_grpc

from serving.client import AsyncRecsysClient, Event, RecsysClient
from serving.client.types import channel_options, event_type, feedback_request
from serving.core.domain import EventType


class FlakyRecommender(pb_grpc.RecommenderServicer):
    """A real gRPC server's LogFeedback that fails with ``codes`` in turn, then answers;
    it keeps the event ids of every attempt it receives."""

    def __init__(self, *codes: grpc.StatusCode) -> None:
        self.codes = list(codes)
        self.attempts: list[list[str]] = []

    def LogFeedback(self, request, context):
        self.attempts.append([event.event_id for event in request.events])
        if self.codes:
            context.abort(self.codes.pop(0), "try again")
        return pb.LogFeedbackResponse(accepted=len(request.events))


@contextmanager
def serving(servicer: FlakyRecommender) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_RecommenderServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


EVENTS = [Event("item-1", "click", user_id="u"), Event("item-2", "like", user_id="u")]
IDS = [event.event_id for event in EVENTS]


def test_grpc_retries_unavailable_with_the_same_event_ids():
    servicer = FlakyRecommender(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    with serving(servicer) as target, RecsysClient(target, retries=3) as client:
        assert client.log_feedback(EVENTS).accepted == 2
    assert servicer.attempts == [IDS, IDS, IDS]


async def test_the_asyncio_client_retries_the_same_way():
    servicer = FlakyRecommender(grpc.StatusCode.UNAVAILABLE)
    with serving(servicer) as target:
        async with AsyncRecsysClient(target, retries=3) as client:
            assert (await client.log_feedback(EVENTS)).accepted == 2
    assert servicer.attempts == [IDS, IDS]


@pytest.mark.parametrize(
    ("failures", "code", "attempts"),
    [
        ([grpc.StatusCode.INVALID_ARGUMENT], grpc.StatusCode.INVALID_ARGUMENT, 1),
        ([grpc.StatusCode.UNAVAILABLE] * 5, grpc.StatusCode.UNAVAILABLE, 4),
    ],
    ids=["other codes are not retried", "retries run out"],
)
def test_other_errors_and_exhausted_retries_are_raised(failures, code, attempts):
    servicer = FlakyRecommender(*failures)
    with (
        serving(servicer) as target,
        RecsysClient(target, retries=3) as client,
        pytest.raises(grpc.RpcError) as raised,
    ):
        client.log_feedback(EVENTS)
    assert raised.value.code() is code
    assert len(servicer.attempts) == attempts


def test_the_retry_policy_is_declared_once_and_capped():
    options = dict(channel_options(10))
    policy = json.loads(options["grpc.service_config"])["methodConfig"][0]["retryPolicy"]
    assert policy["maxAttempts"] == 5 and policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert dict(channel_options(0)) == {"grpc.enable_retries": 0}


def test_events_get_ids_and_timestamps_that_survive_a_retry():
    event = Event("item-1", "add_to_cart", user_id="u")
    first, second = feedback_request([event]), feedback_request([event])
    assert first == second and first.events[0].event_id
    assert Event("i", "click").event_id != Event("i", "click").event_id
    assert event_type("EVENT_TYPE_PURCHASE") is EventType.PURCHASE
