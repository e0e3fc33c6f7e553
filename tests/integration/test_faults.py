"""Faults under load, on a platform of the module's own (the shared one is never broken):
Triton killed with SIGKILL, PostgreSQL stopped and started, SIGTERM to the gRPC server."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recsys.v1 import recsys_pb2 as pb
from recsys.v1 import recsys_pb2_grpc as pb_grpc

from benchmarks import faults
from benchmarks.load import stored_counts
from serving.client import Event, RecsysClient
from serving.stack import Stack, free_port
from tests.integration.isolated import own_platform
from tests.integration.platform import ADMIN_TOKEN, Running, grpc_server, wait_for_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE_S = 2.0
"""Recommend's deadline in these tests: the Triton timeout (300 ms) plus room for a
machine that is busy with other work."""


@pytest.fixture(scope="module")
def stack(platform: Running, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("faults")
    with own_platform(platform, state, triton_timeout_ms=300) as running:
        yield running


def url_of(stack: Stack) -> str:
    assert stack.settings.database_url is not None
    return stack.settings.database_url.get_secret_value()


def items_of(stack: Stack, n: int = 50) -> list[str]:
    with psycopg.connect(url_of(stack)) as conn:
        rows = conn.execute(
            "SELECT item_id FROM items WHERE deleted_at IS NULL ORDER BY item_id LIMIT %s", (n,)
        )
        return [r[0] for r in rows]


@dataclass
class Answers:
    """What a background loop of calls saw: (time, degraded) per answer, errors by code."""

    answers: list[tuple[float, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    slowest_s: float = 0.0


def keep_calling(call: Callable[[], bool], stop: threading.Event, seen: Answers) -> None:
    """Call until told to stop. Every failure is collected for the test to assert (an
    assert failing on this thread would only end the thread)."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            degraded = call()
        except grpc.RpcError as error:
            seen.errors.append(error.code().name)
        except Exception as error:
            seen.errors.append(repr(error))
        else:
            seen.answers.append((time.monotonic(), degraded))
        seen.slowest_s = max(seen.slowest_s, time.monotonic() - started)
        time.sleep(0.02)


def answers_after(seen: Answers, moment: float) -> list[bool]:
    """``degraded`` of each answer given after ``moment``."""
    return [d for t, d in list(seen.answers) if t > moment]


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s"
        time.sleep(0.05)


@contextlib.contextmanager
def in_background(call: Callable[[], bool]) -> Iterator[Answers]:
    """``call`` in a loop on a thread while the block runs."""
    seen, stop = Answers(), threading.Event()
    thread = threading.Thread(target=keep_calling, args=(call, stop, seen), daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(30)


def test_recommend_degrades_while_triton_is_killed_and_recovers(stack: Stack) -> None:
    user = f"fault-{uuid.uuid4()}"
    with RecsysClient(stack.settings.grpc_target, retries=0, timeout_s=DEADLINE_S) as client:
        client.log_feedback([Event(i, "click", user_id=user) for i in items_of(stack, 5)])
        assert not client.recommend(user, k=10).degraded  # a history: Triton is asked
        with in_background(lambda: client.recommend(user, k=10).degraded) as seen:
            down = faults.kill_triton(stack)
            wait_until(lambda: len(answers_after(seen, down + 0.5)) >= 10, 60, "answers")
            during = answers_after(seen, down + 0.5)
            up = faults.start_triton(stack)
            wait_until(lambda: any(t > up and not d for t, d in seen.answers), 30, "a full answer")
            recovered = next(t for t, d in seen.answers if t > up and not d) - up
    assert seen.errors == [], "Recommend must answer (degraded) throughout"
    assert seen.slowest_s < DEADLINE_S
    assert during and all(during), "answers while Triton is down are degraded"
    assert recovered < 5, f"full answers {recovered:.1f} s after Triton's return"


def test_postgres_restart_loses_and_duplicates_no_acknowledged_event(stack: Stack) -> None:
    items = items_of(stack)
    acked: list[str] = []
    target = stack.settings.grpc_target
    # The SDK retries UNAVAILABLE with the same event ids (here long enough to outlast
    # the outage); a raw stub shows what the server answers meanwhile.
    with (
        RecsysClient(target, retries=12) as writer,
        RecsysClient(target, retries=0, timeout_s=DEADLINE_S) as reader,
        grpc.insecure_channel(target) as channel,
    ):
        raw = pb_grpc.RecommenderStub(channel)

        def log_batch() -> bool:
            events = [Event(items[n % len(items)], "click", user_id=f"pg-{n}") for n in range(20)]
            result = writer.log_feedback(events)
            if result.accepted + result.duplicates != len(events):
                raise AssertionError(f"{len(events)} events sent, acknowledged: {result}")
            acked.extend(e.event_id for e in events)
            return False

        with (
            in_background(log_batch) as writes,
            in_background(lambda: reader.recommend("pg-1", k=10).degraded) as reads,
        ):
            wait_until(lambda: len(acked) > 0, 60, "a first acknowledged batch")
            faults.stop_postgres(stack)
            request = pb.LogFeedbackRequest(
                events=[
                    pb.FeedbackEvent(
                        event_id=str(uuid.uuid4()), user_id="pg-x", item_id=items[0], type=1
                    )
                ]
            )
            with pytest.raises(grpc.RpcError) as refused:
                raw.LogFeedback(request, timeout=10)
            during_outage = len(acked)
            faults.start_postgres(stack)
            # Writes resume: batches acknowledged after the restart, not only before it.
            wait_until(lambda: len(acked) > during_outage + 20, 60, "writes after the restart")
        assert writes.errors == [] and reads.errors == []
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert any(d for _, d in reads.answers), "reads during the outage answer degraded"
    rows, distinct = stored_counts(url_of(stack), acked)
    assert rows == distinct == len(acked), "every acknowledged event stored exactly once"


def test_the_parameter_listener_reconnects_after_a_postgres_restart(stack: Stack) -> None:
    target = stack.settings.grpc_target
    url = url_of(stack)

    def listening() -> bool:
        try:
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %%'"
                ).fetchone()
        except psycopg.OperationalError:
            return False
        return row is not None and row[0] > 0

    wait_until(listening, 30, "the server's LISTEN session")
    faults.stop_postgres(stack)
    faults.start_postgres(stack)
    wait_until(listening, 60, "the LISTEN session after the restart")
    with RecsysClient(target, token=ADMIN_TOKEN, retries=5) as client:
        start = client.get_parameters()
        try:
            # Each change is in force through NOTIFY, far sooner than the 30 s poll that
            # backs the listener up.
            for weight in (0.31, 0.32, 0.33):
                version = client.update_parameters(
                    {"popularity_weight": weight}, changed_by="tests", reason="after restart"
                )["version"]
                assert wait_for_version(client, int(version), timeout_s=10) < 10
        finally:
            client.rollback_parameters(start["version"], changed_by="tests", reason="restore")


def test_sigterm_turns_health_off_first_lets_calls_finish_then_exits(
    stack: Stack, tmp_path
) -> None:
    settings = stack.settings.model_copy(
        update={"grpc_port": free_port(), "metrics_port": 0, "shutdown_grace_s": 8}
    )
    items = items_of(stack)
    requests = [
        pb.LogFeedbackRequest(
            events=[
                pb.FeedbackEvent(
                    event_id=str(uuid.uuid4()),
                    user_id=f"term-{n}",
                    item_id=items[n % len(items)],
                    type=1,
                )
                for n in range(10_000)
            ]
        )
        for _ in range(3)
    ]
    with (
        grpc_server(settings, tmp_path / "server.log") as process,
        grpc.insecure_channel(settings.grpc_target) as channel,
        ThreadPoolExecutor(4) as pool,
    ):
        stub = pb_grpc.RecommenderStub(channel)
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=30
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        calls: list[Future[float]] = [
            pool.submit(lambda r=r: (stub.LogFeedback(r, timeout=30), time.monotonic())[1])
            for r in requests
        ]
        time.sleep(0.3)  # the calls are in flight (each takes longer than this)
        process.send_signal(signal.SIGTERM)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        not_serving = time.monotonic()
        watch.cancel()
        finished = [call.result(timeout=30) for call in calls]  # all OK, none cut off
        assert process.wait(30) == 0
        exited = time.monotonic()
    assert max(finished) > not_serving, "a call was still in flight when health turned off"
    assert max(finished) <= exited
    with psycopg.connect(url_of(stack)) as conn:
        stored = conn.execute("SELECT count(*) FROM events WHERE user_id LIKE 'term-%'")
        assert stored.fetchone() == (30_000,)
