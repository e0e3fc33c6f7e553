import grpc
import pytest

from serving.client import Event, RecsysClient
from serving.client.types import backoff_delays, event_type, feedback_request
from serving.core.domain import EventType


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
