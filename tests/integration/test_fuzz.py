"""Property-based fuzzing of every RPC over a real channel: random and malformed messages,
raw bytes, oversized requests. Never INTERNAL (or UNKNOWN), the server keeps serving, and a
rejected call writes nothing. LogFeedback is rate-limited per client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import grpc
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recsys.v1 import recsys_pb2 as pb

from serving.stack import free_port, grpc_ready
from tests.integration import hostile
from tests.integration.platform import ADMIN_TOKEN, Running, grpc_server

pytestmark = pytest.mark.integration

FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
RPCS = hostile.rpcs()


@pytest.fixture(scope="module")
def channel(platform: Running) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(platform.target) as chan:
        yield chan


@pytest.fixture(scope="module", autouse=True)
def leave_no_trace(platform: Running, channel: grpc.Channel) -> Iterator[None]:
    """Whatever the fuzzer managed to change is undone: its items retired, the parameters
    rolled back, a running experiment it created stopped."""
    from serving.client import RecsysClient

    started = hostile.now()
    with RecsysClient(platform.target, token=ADMIN_TOKEN, retries=0) as client:
        version = client.get_parameters()["version"]
        running = {e["name"] for e in client.list_experiments() if e["status"] == "running"}
        yield
        hostile.retire_items_since(platform.url, started)
        if client.get_parameters()["version"] != version:
            client.rollback_parameters(version, changed_by="tests", reason="after fuzzing")
        for experiment in client.list_experiments():
            if experiment["status"] == "running" and experiment["name"] not in running:
                client.stop_experiment(experiment["name"], changed_by="tests", reason="fuzz")
    assert grpc_ready(platform.target)


def check(platform: Running, channel: grpc.Channel, rpc: hostile.Rpc, request: bytes) -> None:
    """One call: never INTERNAL, and a rejected call leaves the guarded tables as they were."""
    before = hostile.counts(platform.url)
    code = hostile.call(channel, rpc, request, AUTH if rpc.admin else ())
    assert code not in NEVER, f"{rpc.path} answered {code.name}"
    if code != grpc.StatusCode.OK:
        assert hostile.counts(platform.url) == before, f"{rpc.path} {code.name} wrote rows"


@pytest.mark.parametrize("rpc", RPCS, ids=lambda r: r.path.rsplit("/", 1)[-1])
def test_random_messages(platform: Running, channel: grpc.Channel, rpc: hostile.Rpc) -> None:
    @FUZZ
    @given(hostile.messages(rpc.request.DESCRIPTOR))
    def fuzz(message: pb.RecommendRequest) -> None:
        check(platform, channel, rpc, message.SerializeToString())

    fuzz()


@pytest.mark.parametrize("rpc", RPCS, ids=lambda r: r.path.rsplit("/", 1)[-1])
def test_raw_bytes(platform: Running, channel: grpc.Channel, rpc: hostile.Rpc) -> None:
    @FUZZ
    @given(st.binary(max_size=512))
    def fuzz(data: bytes) -> None:
        check(platform, channel, rpc, data)

    fuzz()


def test_messages_over_the_size_limit_are_refused_and_write_nothing(
    platform: Running, channel: grpc.Channel
) -> None:
    limit = platform.settings.max_message_bytes
    for rpc in RPCS:
        payload = pb.ForgetUserRequest(user_id="x" * (limit + 1)).SerializeToString()
        before = hostile.counts(platform.url)
        assert hostile.call(channel, rpc, payload, AUTH) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert hostile.counts(platform.url) == before
    # Just under the limit the request is read, and refused for what it says.
    under = pb.RecommendRequest(user_id="x" * (limit - 1000), k=5).SerializeToString()
    recommend = next(r for r in RPCS if r.path.endswith("/Recommend"))
    assert hostile.call(channel, recommend, under) == grpc.StatusCode.INVALID_ARGUMENT


def test_nul_characters_are_invalid_arguments_naming_the_field(channel: grpc.Channel) -> None:
    upsert = next(r for r in RPCS if r.path.endswith("/UpsertItems"))
    request = pb.UpsertItemsRequest(items=[pb.Item(item_id="nul-item", title="a\x00b")])
    stub = channel.unary_unary(upsert.path)
    with pytest.raises(grpc.RpcError) as error:
        stub(request.SerializeToString(), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("items[0].title")


def test_log_feedback_is_rate_limited_per_client(platform: Running, tmp_path) -> None:
    settings_ = platform.settings.model_copy(
        update={
            "grpc_port": free_port(),
            "metrics_port": 0,
            "feedback_rate_limit": 200,
            "feedback_rate_burst": 1000,
            # IPv4 and IPv6 both: two clients of one machine, seen at two addresses.
            "grpc_host": "[::]",
        }
    )
    with psycopg.connect(platform.url) as conn:
        item = conn.execute("SELECT item_id FROM items WHERE deleted_at IS NULL LIMIT 1")
        item_id = item.fetchone()[0]  # type: ignore[index]
    user = f"limited-{uuid.uuid4()}"

    def batch(n: int) -> bytes:
        events = [
            pb.FeedbackEvent(event_id=str(uuid.uuid4()), user_id=user, item_id=item_id, type=1)
            for _ in range(n)
        ]
        return pb.LogFeedbackRequest(events=events).SerializeToString()

    log_feedback = next(r for r in RPCS if r.path.endswith("/LogFeedback"))
    with (
        grpc_server(settings_, tmp_path / "server.log"),
        grpc.insecure_channel(f"127.0.0.1:{settings_.grpc_port}") as chan,
        grpc.insecure_channel(f"[::1]:{settings_.grpc_port}") as other,
    ):
        assert hostile.call(chan, log_feedback, batch(900)) == grpc.StatusCode.OK
        refused = hostile.call(chan, log_feedback, batch(900))
        assert refused == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Another client has a bucket of its own: its whole burst is there.
        assert hostile.call(other, log_feedback, batch(900)) == grpc.StatusCode.OK
        assert hostile.call(other, log_feedback, batch(900)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        time.sleep(1.0)  # the contract: 200 events/s refill (100 were left)
        assert hostile.call(chan, log_feedback, batch(150)) == grpc.StatusCode.OK
    with psycopg.connect(platform.url) as conn:
        stored = conn.execute("SELECT count(*) FROM events WHERE user_id = %s", (user,))
        assert stored.fetchone() == (1950,), "the refused batches wrote nothing"
