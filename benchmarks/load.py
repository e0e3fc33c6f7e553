"""Load, ingestion and faults against the local stack, over gRPC.

    python -m benchmarks.load [--items 3000] [--state-dir DIR]
        [--ingest-events 300000] [--ingest-batch 5000] [--ingest-concurrency 4]
        [--mode open --rate 200 | --mode closed --concurrency 16] [--seconds 20]
        [--mix recommend=0.8,feedback=0.2] [--feedback-batch 20]
        [--fault none|triton|postgres] [--outage-s 3]

Three parts (run as 2, 3, 1), printed with the command that reproduces the run:

1. ingestion: LogFeedback batches (requests built and serialised before the clock
   starts) back to back at ``--ingest-concurrency``; events/s durably committed, then a
   count check that every acknowledged event id is in ``events`` exactly once, and a
   replay of acknowledged batches that must come back as duplicates only. The baseline
   is the same batches written straight through the store (no gRPC) in the same run.
2. load: a Recommend/LogFeedback mix, open loop (a fixed arrival rate; latency counts
   from the scheduled arrival, so a stall is not hidden) or closed loop (workers back to
   back); throughput, p50/p95/p99/max and errors by status code per call.
3. a fault during the same load (``--fault``): ``triton`` kills tritonserver with SIGKILL,
   waits ``--outage-s`` and starts it again (Recommend must answer throughout, degraded,
   and be back to full answers soon after Triton is ready); ``postgres`` stops PostgreSQL
   for ``--outage-s`` (LogFeedback is UNAVAILABLE and retried with the same event ids like
   the SDK does; afterwards every acknowledged event is stored exactly once).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import psycopg
from recsys.v1 import recsys_pb2 as pb

from benchmarks import faults
from benchmarks.recommend import Run
from serving.adapters.postgres.db import open_pool
from serving.adapters.postgres.feedback import record_feedback
from serving.core.domain import EventType, FeedbackEvent
from serving.stack import Stack, side_by_side_settings

LOG_FEEDBACK = "/recsys.v1.Recommender/LogFeedback"
RECOMMEND = "/recsys.v1.Recommender/Recommend"
EVENT_TYPES = (EventType.CLICK, EventType.LIKE, EventType.SKIP, EventType.ADD_TO_CART)
RECOMMEND_DEADLINE_S = 1.0
FEEDBACK_DEADLINE_S = 10.0


# -- requests ------------------------------------------------------------------------
@dataclass(frozen=True)
class Batch:
    """One LogFeedback call, serialised ahead of time (ids kept for the count check)."""

    payload: bytes
    event_ids: list[str]
    events: list[FeedbackEvent]


def make_batches(
    items: Sequence[str], users: int, size: int, count: int, rng: random.Random
) -> list[Batch]:
    now = datetime.now(UTC)
    batches = []
    for _ in range(count):
        events = [
            FeedbackEvent(
                event_id=str(uuid.UUID(int=rng.getrandbits(128))),
                user_id=f"load-{rng.randrange(users)}",
                session_id="",
                item_id=rng.choice(items),
                type=rng.choice(EVENT_TYPES),
                occurred_at=now,
            )
            for _ in range(size)
        ]
        request = pb.LogFeedbackRequest(
            events=[
                pb.FeedbackEvent(
                    event_id=e.event_id, user_id=e.user_id, item_id=e.item_id, type=int(e.type)
                )
                for e in events
            ]
        )
        batches.append(Batch(request.SerializeToString(), [e.event_id for e in events], events))
    return batches


class Calls:
    """Raw gRPC calls: requests go out pre-serialised, answers are parsed only as needed."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.retried = 0
        self.feedback = channel.unary_unary(LOG_FEEDBACK)
        self.recommend = channel.unary_unary(
            RECOMMEND,
            request_serializer=pb.RecommendRequest.SerializeToString,
            response_deserializer=pb.RecommendResponse.FromString,
        )

    async def log_feedback(self, batch: Batch, retry: bool) -> pb.LogFeedbackResponse:
        """One batch; with ``retry``, UNAVAILABLE is retried with the same event ids and
        the SDK's backoff (0.1 s doubling to 2 s). A loop of its own rather than gRPC's
        retry policy because the benchmark counts the failed attempts (``retried``)."""
        delays = [*(min(2.0, 0.1 * 2**n) for n in range(12)), None] if retry else [None]
        for delay in delays:
            try:
                reply = await self.feedback(batch.payload, timeout=FEEDBACK_DEADLINE_S)
                return pb.LogFeedbackResponse.FromString(reply)
            except grpc.aio.AioRpcError as error:
                if delay is None or error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                self.retried += 1
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")


# -- recording ------------------------------------------------------------------------
@dataclass
class Outcome:
    kind: str
    at: float
    latency_ms: float
    code: str
    degraded: bool = False
    details: str = ""


@dataclass
class Recorder:
    started: float = field(default_factory=time.monotonic)
    outcomes: list[Outcome] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)

    async def timed(self, kind: str, since: float, call: Awaitable[bool]) -> None:
        """Await ``call`` (it returns "degraded") and record how it went."""
        code, degraded, details = "OK", False, ""
        try:
            degraded = await call
        except grpc.aio.AioRpcError as error:
            code, details = error.code().name, str(error.details())
        now = time.monotonic()
        self.outcomes.append(Outcome(kind, now, (now - since) * 1000, code, degraded, details))

    def error_samples(self) -> list[str]:
        """One message per call and status, to tell the causes of errors apart."""
        seen: dict[tuple[str, str], str] = {}
        for o in self.outcomes:
            if o.code != "OK":
                seen.setdefault((o.kind, o.code), o.details[:120])
        return [f"{kind} {code}: {details}" for (kind, code), details in sorted(seen.items())]

    def runs(self, label: str, seconds: float) -> list[Run]:
        result = []
        for kind in sorted({o.kind for o in self.outcomes}):
            mine = [o for o in self.outcomes if o.kind == kind]
            ok = np.array([o.latency_ms for o in mine if o.code == "OK"])
            errors = Counter(o.code for o in mine if o.code != "OK")
            degraded = sum(o.degraded for o in mine)
            result.append(Run(f"{kind} ({label})", 0, ok, seconds, errors, degraded))
        return result


# -- drivers --------------------------------------------------------------------------
Job = Callable[[Recorder, float], Awaitable[None]]


async def open_loop(job: Job, rate: float, stop: asyncio.Event, recorder: Recorder) -> None:
    """Start ``job`` ``rate`` times a second until ``stop``, whatever the answers do."""
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    n = 0
    while not stop.is_set():
        scheduled = start + n / rate
        await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
        task = asyncio.ensure_future(job(recorder, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    await asyncio.gather(*tasks)


async def closed_loop(job: Job, concurrency: int, stop: asyncio.Event, recorder: Recorder) -> None:
    async def worker() -> None:
        while not stop.is_set():
            await job(recorder, time.monotonic())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def mixed_job(
    calls: Calls, mix: dict[str, float], items: list[str], args: argparse.Namespace, retry: bool
) -> Job:
    rng = random.Random()
    kinds, weights = list(mix), list(mix.values())

    async def recommend() -> bool:
        request = pb.RecommendRequest(user_id=f"load-{rng.randrange(args.users)}", k=10)
        return bool((await calls.recommend(request, timeout=RECOMMEND_DEADLINE_S)).degraded)

    async def feedback(recorder: Recorder) -> bool:
        batch = make_batches(items, args.users, args.feedback_batch, 1, rng)[0]
        await calls.log_feedback(batch, retry)
        recorder.acked.extend(batch.event_ids)
        return False

    async def job(recorder: Recorder, since: float) -> None:
        kind = rng.choices(kinds, weights)[0]
        call = recommend() if kind == "Recommend" else feedback(recorder)
        await recorder.timed(kind, since, call)

    return job


# -- checks ---------------------------------------------------------------------------
def stored_counts(url: str, event_ids: Sequence[str]) -> tuple[int, int]:
    """(rows, distinct ids) in ``events`` among ``event_ids``: exactly once = both equal
    to the number of ids."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TEMP TABLE acked (event_id text)")
        with conn.cursor().copy("COPY acked FROM STDIN") as copy:
            for event_id in event_ids:
                copy.write_row((event_id,))
        row = conn.execute(
            "SELECT count(*), count(DISTINCT e.event_id) FROM events e JOIN acked USING (event_id)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def catalogue(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT item_id FROM items WHERE deleted_at IS NULL")]


# -- the three parts ------------------------------------------------------------------
@dataclass
class Ingestion:
    events: int
    seconds: float
    store_events_per_s: float
    rows: int
    distinct: int
    replay_accepted: int
    replay_duplicates: int

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


async def ingest(calls: Calls, url: str, items: list[str], args: argparse.Namespace) -> Ingestion:
    count = max(1, args.ingest_events // args.ingest_batch)
    rng = random.Random()  # unseeded: event ids must be new in a reused state folder
    batches = make_batches(items, args.users, args.ingest_batch, count, rng)
    baseline = make_batches(items, args.users, args.ingest_batch, count, rng)
    await calls.log_feedback(make_batches(items, args.users, 100, 1, rng)[0], False)  # warm-up
    queue = list(batches)
    acked: list[str] = []

    async def worker() -> None:
        while queue:
            batch = queue.pop()
            reply = await calls.log_feedback(batch, False)
            assert reply.accepted == len(batch.event_ids), reply
            acked.extend(batch.event_ids)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.ingest_concurrency)))
    elapsed = time.perf_counter() - started
    rows, distinct = stored_counts(url, acked)
    replay_accepted = replay_duplicates = 0
    for batch in batches[:3]:
        reply = await calls.log_feedback(batch, False)
        replay_accepted += reply.accepted
        replay_duplicates += reply.duplicates
    # The baseline: the same work straight through the store, no gRPC or validation.
    pool = await open_pool(url, args.ingest_concurrency + 1)
    store_queue = list(baseline)

    async def store_worker() -> None:
        while store_queue:
            await record_feedback(pool, store_queue.pop().events, 24.0)

    store_started = time.perf_counter()
    await asyncio.gather(*(store_worker() for _ in range(args.ingest_concurrency)))
    store_rate = len(baseline) * args.ingest_batch / (time.perf_counter() - store_started)
    await pool.close()
    return Ingestion(
        len(acked), elapsed, store_rate, rows, distinct, replay_accepted, replay_duplicates
    )


@dataclass
class FaultReport:
    lines: list[str]


async def load(
    calls: Calls,
    stack: Stack,
    items: list[str],
    args: argparse.Namespace,
    fault: str,
) -> tuple[list[Run], Recorder, FaultReport | None]:
    recorder = Recorder()
    job = mixed_job(calls, parse_mix(args.mix), items, args, retry=fault != "none")
    stop = asyncio.Event()
    if args.mode == "open":
        driving = open_loop(job, args.rate, stop, recorder)
    else:
        driving = closed_loop(job, args.concurrency, stop, recorder)
    report = None
    if fault == "none":
        asyncio.get_running_loop().call_later(args.seconds, stop.set)
        await driving
    else:
        # The load goes on for --seconds after the repair, so recovery shows in the run.
        async def fault_then_stop() -> tuple[float, float]:
            window = await asyncio.to_thread(inject, fault, stack, args)
            await asyncio.sleep(args.seconds)
            stop.set()
            return window

        _, (down, up) = await asyncio.gather(driving, fault_then_stop())
        report = fault_report(fault, recorder, down, up, stack, calls)
    label = f"{args.mode} loop" + (f", {fault} fault" if fault != "none" else "")
    elapsed = time.monotonic() - recorder.started
    return recorder.runs(label, elapsed), recorder, report


def inject(fault: str, stack: Stack, args: argparse.Namespace) -> tuple[float, float]:
    """After ``--seconds`` / 4 of load: the fault, ``--outage-s`` of it, then the repair."""
    time.sleep(args.seconds / 4)
    if fault == "triton":
        down = faults.kill_triton(stack)
        time.sleep(args.outage_s)
        return down, faults.start_triton(stack)
    down = faults.stop_postgres(stack)
    time.sleep(args.outage_s)
    return down, faults.start_postgres(stack)


def fault_report(
    fault: str, recorder: Recorder, down: float, up: float, stack: Stack, calls: Calls
) -> FaultReport:
    recs = [o for o in recorder.outcomes if o.kind == "Recommend"]
    during = [o for o in recs if down <= o.at <= up]
    lines = [
        f"{fault} down for {up - down:.1f} s (until it was ready again)",
        f"Recommend during the outage: {len(during)} answers, "
        f"{sum(o.code == 'OK' for o in during)} OK, {sum(o.degraded for o in during)} degraded, "
        f"max latency {max((o.latency_ms for o in during), default=0):.0f} ms "
        f"(deadline {RECOMMEND_DEADLINE_S * 1000:.0f} ms)",
    ]
    last_degraded = max((o.at for o in recs if o.degraded), default=down)
    full_after = sum(1 for o in recs if o.at > last_degraded and o.code == "OK")
    lines.append(
        f"full answers again {max(0.0, last_degraded - up):.2f} s after {fault} was ready"
        f" (the last degraded answer; {full_after} full answers after it)"
    )
    if fault == "postgres":
        assert stack.settings.database_url is not None
        url = stack.settings.database_url.get_secret_value()
        rows, distinct = stored_counts(url, recorder.acked)
        unavailable = sum(1 for o in recorder.outcomes if o.code == "UNAVAILABLE")
        lines.append(
            f"LogFeedback: {calls.retried} UNAVAILABLE answers retried with the same event ids,"
            f" {unavailable} calls failed after all retries; {len(recorder.acked)} events"
            f" acknowledged, {rows} rows / {distinct} distinct ids stored"
            f" ({'exactly once' if rows == distinct == len(recorder.acked) else 'MISMATCH'})"
        )
    return FaultReport(lines)


# -- report ---------------------------------------------------------------------------
def parse_mix(text: str) -> dict[str, float]:
    names = {"recommend": "Recommend", "feedback": "LogFeedback"}
    mix = {names[k.strip()]: float(v) for k, v in (p.split("=") for p in text.split(","))}
    return {k: v for k, v in mix.items() if v > 0}


def table(runs: list[Run]) -> list[str]:
    lines = [
        "| call | answers/s | p50 ms | p95 ms | p99 ms | max ms | errors | degraded |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.name} | {r.throughput:.0f} | {r.percentile(50):.1f} | {r.percentile(95):.1f}"
            f" | {r.percentile(99):.1f} | {r.percentile(100):.1f} | "
            f"{sum(r.errors.values())} {dict(r.errors) or ''} | {r.degraded} |"
        )
    return lines


def ingestion_lines(result: Ingestion, args: argparse.Namespace) -> list[str]:
    once = result.rows == result.distinct == result.events
    rate = result.events_per_s
    return [
        f"- ingestion: {result.events} events in {result.seconds:.2f} s = **{rate:,.0f} events/s**"
        f" committed through LogFeedback (batches of {args.ingest_batch},"
        f" {args.ingest_concurrency} concurrent calls)"
        f" — {'PASS' if rate >= 20_000 else 'MISS'} (target >= 20,000/s)",
        f"- baseline, same batches straight through the store (no gRPC): "
        f"{result.store_events_per_s:,.0f} events/s; LogFeedback reaches"
        f" {rate / result.store_events_per_s:.2f}x of it",
        f"- exactly once: {result.events} acknowledged, {result.rows} rows,"
        f" {result.distinct} distinct ids — {'PASS' if once else 'FAIL'}; replaying 3"
        f" acknowledged batches: {result.replay_accepted} accepted,"
        f" {result.replay_duplicates} duplicates",
    ]


async def run(stack: Stack, args: argparse.Namespace) -> list[str]:
    assert stack.settings.database_url is not None
    url = stack.settings.database_url.get_secret_value()
    items = catalogue(url)
    options = [("grpc.max_send_message_length", -1)]
    async with grpc.aio.insecure_channel(stack.settings.grpc_target, options=options) as channel:
        calls = Calls(channel)
        # Ingestion last: the work it leaves behind (dashboard rollups, vacuum) must not
        # land in the latency figures.
        runs, recorder, _ = await load(calls, stack, items, args, "none")
        lines = [*table(runs), *(f"- error: {e}" for e in recorder.error_samples())]
        if args.fault != "none":
            runs, recorder, report = await load(calls, stack, items, args, args.fault)
            lines += ["", *table(runs), *(f"- error: {e}" for e in recorder.error_samples())]
            assert report is not None
            lines += [f"- {line}" for line in report.lines]
        if args.ingest_events:
            lines += ["", *ingestion_lines(await ingest(calls, url, items, args), args)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--ingest-events", type=int, default=300_000)
    parser.add_argument("--ingest-batch", type=int, default=5000)
    parser.add_argument("--ingest-concurrency", type=int, default=4)
    parser.add_argument("--mode", choices=("open", "closed"), default="open")
    parser.add_argument("--rate", type=float, default=100.0, help="open loop: calls/s")
    parser.add_argument("--concurrency", type=int, default=16, help="closed loop: workers")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="load time (with a fault: after the repair)"
    )
    parser.add_argument("--mix", default="recommend=0.8,feedback=0.2")
    parser.add_argument("--feedback-batch", type=int, default=20)
    parser.add_argument("--fault", choices=("none", "triton", "postgres"), default="none")
    parser.add_argument("--outage-s", type=float, default=3.0)
    args = parser.parse_args()
    state = args.state_dir or Path(tempfile.mkdtemp(prefix="recsys-load-"))
    # Rate limiting is off: this run is the one client and measures the server's ceiling.
    settings = side_by_side_settings(
        state_dir=state, demo_items=args.items, triton_timeout_ms=300, feedback_rate_limit=0
    )
    stack = Stack(settings, simulate=False, dashboard=False)
    try:
        stack.start()
        lines = asyncio.run(run(stack, args))
    finally:
        stack.stop()
    print("\n".join([*lines, "", "reproduce: python -m benchmarks.load " + " ".join(sys.argv[1:])]))


if __name__ == "__main__":
    main()
