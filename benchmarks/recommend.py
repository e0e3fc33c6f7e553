"""Recommend latency and throughput against the local stack, next to bare Triton
``user_encoder`` calls measured in the same run (closed loop, concurrency 1 / 8 / 32).

    python -m benchmarks.recommend [--items 10000] [--seconds 10] [--state-dir DIR]
                                   [--param exploration=off ...] [--feedback-rate 200]
                                   [--compare-dim 128] [--compare-content-rows]
                                   [--synthetic-items 100000]
                                   [--workers 2 --connections 8] [--switch]

It starts the same stack as ``recsys up`` (no simulator, no dashboard) on free ports,
seeds the demo catalogue (``--state-dir`` keeps it for the next run), gives ``--users``
users a click history, sets the ranking parameters given with ``--param`` through the
Admin API, then measures. Targets (2-core machine, 10,000 items): Recommend p50 at most
1.5x bare Triton p50 at concurrency 1; p99 at most 50 ms at concurrency 8; at least
500 Recommend/s at concurrency 32. At concurrency 1 an empty call into the orchestrator
(gRPC health Check) is measured too: with the bare call, what any Recommend costs before
it reads a state or ranks. At concurrency 32 the report gives the CPU per call of each
process of the stack and how many histories the user encoder ran per execution
(``benchmarks.processes``). With ``--feedback-rate``, Recommend at concurrency 1 and
8 is measured again while LogFeedback streams that many click events per second into the
same users' histories (so every answer reads freshly changed state), next to the runs
without it. With ``--compare-dim``, everything is measured again after a user encoder of
that width (random weights: the cost does not depend on them) is exported as the next
version, so the serving cost of a wider trained encoder is read against the demo one in
the same run. ``--switch`` measures Recommend at concurrency 8, last, while the next version is
exported, loaded by Triton and followed by the item index: the answers that fell back
(degraded) during the switch, and by which version the rest were answered.
``--compare-content-rows`` measures again after a version of the demo width
stripped of its items' vectors is served, as versions exported before migration 0006
were: every history position then sends its content embedding (50 x 384 floats) where a
history of known items sends tokens alone. At concurrency 1, Recommend with a free-text
``query`` is measured next to the plain call: every query new (the content encoder runs on
each) and a few queries repeated (answered from the server's query-embedding cache). With
``--synthetic-items``,
that many more items with synthetic content vectors (random unit vectors: MiniLM cannot
embed such catalogues here in reasonable time) are added, and a user encoder with random
weights over the whole catalogue is served before measuring; at or above the server's
``exact_search_below`` the run waits until its FAISS index is built. ``--workers`` runs
that many orchestrator processes on the port, and ``--connections`` spreads Recommend
over that many client connections (the kernel gives each connection to one worker).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from benchmarks.processes import Accounting
from serving.adapters.postgres import items as item_store
from serving.adapters.postgres.db import open_pool
from serving.adapters.triton import repository
from serving.adapters.triton.client import TritonEncoders
from serving.client import AsyncRecsysClient, Event
from serving.config import Settings
from serving.core.domain import Item
from serving.models.user_encoder import UserEncoder, UserEncoderConfig
from serving.stack import Stack, side_by_side_settings
from serving.training.export import export_user_encoder
from serving.training.publish import reload_user_encoder

CONCURRENCY = (1, 8, 32)
HISTORY_LENGTH = 50  # the serving default (parameter history_length)
WITH_FEEDBACK = "Recommend while feedback flows"
PLAIN = "Recommend (gRPC)"
BARE = "bare Triton user_encoder"
EMPTY = "empty orchestrator call (gRPC health Check)"
QUERY_NEW = "Recommend + query, uncached"
QUERY_CACHED = "Recommend + query, cached"
SWITCH = "Recommend while the next version switches in"
QUERIES = (
    "telescopes for beginners",
    "something light and funny",
    "a slow jazz record for a rainy night",
    "board games for two players",
    "a lens for landscape photography",
)
HISTORY = 30
DEMO_DIM = 64  # the demo user encoder's width
MODEL_PROBE = "bench-model-probe"
RUN_USERS = f"bench-{random.Random().getrandbits(32):08x}-"
"""This run's users: new on a kept ``--state-dir`` too, so that each run measures histories
of ``HISTORY`` clicks (topping up the same users run after run grew their histories past
what the state keeps, and every state read then scanned their older events as well)."""


def bench_user(n: int) -> str:
    return f"{RUN_USERS}{n}"


# A channel that opens its own TCP connection (gRPC shares one per target otherwise), so
# SO_REUSEPORT can hand it to another worker.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


@dataclass(frozen=True)
class Run:
    name: str
    concurrency: int
    latencies_ms: np.ndarray
    seconds: float
    errors: Counter[str]
    degraded: int = 0
    cpu: str = ""
    """At the highest concurrency: CPU per call by process (benchmarks.processes)."""

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else 0.0


async def closed_loop(
    name: str,
    call: Callable[[int], Awaitable[bool]],
    concurrency: int,
    seconds: float,
    until: asyncio.Future[Any] | None = None,
) -> Run:
    """``concurrency`` workers calling back to back for ``seconds`` (or, given ``until``,
    until it is done); ``call`` returns whether the answer was degraded."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    degraded = 0
    deadline = time.perf_counter() + seconds

    def going_on() -> bool:
        return not until.done() if until is not None else time.perf_counter() < deadline

    async def worker(seed: int) -> None:
        nonlocal degraded
        n = seed
        while going_on():
            started = time.perf_counter()
            try:
                # Not `degraded += await ...`: that reads the count before the await and
                # writes back over what the other workers added meanwhile.
                was_degraded = await call(n)
                degraded += was_degraded
                latencies.append((time.perf_counter() - started) * 1000)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
            except Exception as error:
                errors[type(error).__name__] += 1
            n += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Run(name, concurrency, np.array(latencies), elapsed, errors, degraded)


FEEDBACK_BATCH = 10


async def feedback_stream(
    client: AsyncRecsysClient, catalogue: list[str], users: int, rate: float, sent: list[int]
) -> None:
    """Click events for random benchmark users at ``rate`` events/s, in small batches,
    until cancelled; ``sent[0]`` counts the acknowledged ones."""
    rng = random.Random(1)
    interval = FEEDBACK_BATCH / rate
    next_at = time.perf_counter()
    while True:
        batch = [
            Event(rng.choice(catalogue), "click", user_id=bench_user(rng.randrange(users)))
            for _ in range(FEEDBACK_BATCH)
        ]
        sent[0] += (await client.log_feedback(batch)).accepted
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


async def measure(
    settings: Settings,
    users: int,
    seconds: float,
    params: dict[str, object],
    feedback_rate: float,
    *,
    seed_histories: bool = True,
    index_items: int = 0,
    connections: int = 1,
    orchestrators: frozenset[int] = frozenset(),
) -> list[Run]:
    """Every closed-loop run; ``seed_histories=False`` measures again on the histories
    (and parameters) the first call left, so both calls encode the same lengths. The bare
    call sends what Recommend sends for a history of known items: no content rows, or
    one per position when the newest version holds no vectors of its items (a kept
    ``--state-dir`` may end with the one ``--compare-content-rows`` exported)."""
    rng = random.Random(0)
    token = settings.admin_token.get_secret_value()
    async with AsyncRecsysClient(settings.grpc_target, token=token, timeout_s=10) as client:
        if params:
            changed = await client.update_parameters(
                params, changed_by="benchmark", reason="benchmark settings"
            )
            for _ in range(100):  # in force within a second (LISTEN/NOTIFY)
                probe = await client.recommend("bench-probe", k=1)
                if probe.parameter_version == changed["version"]:
                    break
                await asyncio.sleep(0.05)
        catalogue = (await client.recommend("bench-probe", k=1000)).item_ids
        for u in range(users if seed_histories else 0):
            picks = rng.sample(catalogue, HISTORY)
            await client.log_feedback([Event(i, "click", user_id=bench_user(u)) for i in picks])
        encoders = TritonEncoders(settings.triton_grpc_url, timeout_ms=10_000)
        length = 50
        tokens = np.array([rng.randrange(1, 300) for _ in range(length)], np.int64)
        types = np.ones(length, np.int64)
        served = await encoders.content_encoder()  # the user encoder takes its width
        width = served.dim if served is not None else 384
        rows = 0 if newest_takes_tokens(settings) else length
        content = np.random.default_rng(0).standard_normal((rows, width)).astype(np.float32)

        async def bare(_: int) -> bool:
            await encoders.encode_user(tokens, types, content)
            return False

        health_channel = grpc.aio.insecure_channel(settings.grpc_target)
        health = health_pb2_grpc.HealthStub(health_channel)

        async def empty(_: int) -> bool:
            await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            return False

        callers = [client] + [
            AsyncRecsysClient(
                settings.grpc_target,
                timeout_s=10,
                channel=grpc.aio.insecure_channel(settings.grpc_target, OWN_CONNECTION),
            )
            for _ in range(connections - 1)
        ]

        async def recommend(n: int) -> bool:
            caller = callers[n % len(callers)]
            return (await caller.recommend(bench_user(n % users), k=10)).degraded

        run_id = random.Random().getrandbits(32)  # new texts even on a kept --state-dir

        async def new_query(n: int) -> bool:
            text = f"{QUERIES[n % len(QUERIES)]} {run_id} {n}"  # never asked before
            return (await client.recommend(bench_user(n % users), k=10, query=text)).degraded

        async def cached_query(n: int) -> bool:
            text = QUERIES[n % len(QUERIES)]
            return (await client.recommend(bench_user(n % users), k=10, query=text)).degraded

        for n in range(50):  # warm-up (and every cached query asked once)
            await bare(0)
            await recommend(n)
            await cached_query(n)
        if index_items:  # the server builds it once it follows the version
            version = int((await client.recommend(bench_user(0), k=1)).model_version)
            for _ in range(3000):
                if index_built(settings, index_items, version):
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the server never logged its vector index built")
        runs = []
        accounting = Accounting(set(orchestrators), settings.triton_http_port)
        for concurrency in CONCURRENCY:
            if concurrency == 1:  # the hop into the orchestrator alone, its interceptors too
                runs.append(await closed_loop(EMPTY, empty, 1, seconds))
            for name, call in ((BARE, bare), (PLAIN, recommend)):
                if concurrency == CONCURRENCY[-1]:
                    accounting.start()
                run = await closed_loop(name, call, concurrency, seconds)
                if concurrency == CONCURRENCY[-1]:
                    run = replace(run, cpu=accounting.stop(len(run.latencies_ms)))
                runs.append(run)
            if concurrency == 1:
                runs.append(await closed_loop(QUERY_NEW, new_query, 1, seconds))
                runs.append(await closed_loop(QUERY_CACHED, cached_query, 1, seconds))
        for concurrency in CONCURRENCY[:2] if feedback_rate > 0 else ():
            sent = [0]
            stream = asyncio.create_task(
                feedback_stream(client, catalogue, users, feedback_rate, sent)
            )
            run = await closed_loop(WITH_FEEDBACK, recommend, concurrency, seconds)
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream
            runs.append(
                replace(run, name=f"{WITH_FEEDBACK} ({sent[0] / run.seconds:.0f} events/s)")
            )
        await encoders.close()
        await health_channel.close()
        for caller in callers[1:]:
            await caller.close()
    return runs


async def live_catalogue(pool: AsyncConnectionPool) -> tuple[tuple[str, ...], np.ndarray]:
    """Every live item's id and content embedding, read a page at a time (a million rows
    at once would take several GB in Python objects)."""
    ids: list[str] = []
    rows: list[np.ndarray] = []
    after = None
    while True:
        page = await item_store.items_page(pool, after, PAGE)
        live = [s for s in page if not s.deleted]
        ids += [s.item.item_id for s in live]
        rows += [np.stack([s.embedding for s in live])] if live else []
        if len(page) < PAGE:
            return tuple(ids), np.concatenate(rows)
        after = page[-1].item.item_id


async def export_width(
    settings: Settings, database_url: str, dim: int, every_position: bool = False
) -> int:
    """A user encoder ``dim`` wide over the stack's catalogue as the next version, loaded
    by Triton and served (Recommend for a user with a history reports it); returns the
    version. ``every_position``: stripped of its items' vectors, as versions exported
    before migration 0006 (their user encoder takes every position's content)."""
    pool = await open_pool(database_url, 2)
    try:
        ids, content = await live_catalogue(pool)
        config = UserEncoderConfig(num_items=len(ids), dim=dim, max_len=HISTORY_LENGTH)
        version = await export_user_encoder(
            pool, settings.model_repository, UserEncoder(config).eval(), ids, content,
            {"source": f"benchmark, dim {dim}"},
        )  # fmt: skip
        if every_position:
            folder = settings.model_repository / repository.USER_ENCODER / str(version)
            (folder / repository.KNOWN_ITEMS).unlink()
            async with pool.connection() as conn:
                await conn.execute(
                    "UPDATE model_artifacts SET known_vectors = NULL WHERE version = %s",
                    (version,),
                )
    finally:
        await pool.close()
    await reload_user_encoder(settings)
    token = settings.admin_token.get_secret_value()
    async with AsyncRecsysClient(settings.grpc_target, token=token, timeout_s=10) as client:
        # A user with a history is answered through the model (and names its version).
        await client.log_feedback([Event(ids[0], "click", user_id=MODEL_PROBE)])
        for _ in range(3000):
            if (await client.recommend(MODEL_PROBE, k=1)).model_version == str(version):
                return version
            await asyncio.sleep(0.1)
    raise RuntimeError(f"Recommend never reported user_encoder v{version}")


async def measure_switch(
    settings: Settings, database_url: str, users: int, index_items: int, concurrency: int = 8
) -> tuple[Run, Counter[str], float]:
    """Recommend at ``concurrency`` while the next version (the demo width) is exported,
    loaded by Triton and followed by the index, and one second after (at FAISS sizes:
    after the new version's index is logged built). Returns the run, the answers per
    model version ("" the fallback's), and the seconds until the new version answered.
    The export runs in this process (in a thread): on this machine its CPU is taken from
    the server and the load generator, as it would not be in a deployment."""
    versions: Counter[str] = Counter()
    async with AsyncRecsysClient(settings.grpc_target, timeout_s=10) as client:

        async def recommend(n: int) -> bool:
            answer = await client.recommend(bench_user(n % users), k=10)
            versions[answer.model_version] += 1
            return answer.degraded

        async def switch() -> float:
            started = time.perf_counter()
            # On an event loop of its own: exporting a million items' version is minutes
            # of work that would otherwise delay this loop's Recommend calls too.
            export = export_width(settings, database_url, DEMO_DIM)
            version = await asyncio.to_thread(asyncio.run, export)
            answered = time.perf_counter() - started
            for _ in range(6000 if index_items else 0):
                if index_built(settings, index_items, version):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)
            return answered

        switching = asyncio.ensure_future(switch())
        run = await closed_loop(SWITCH, recommend, concurrency, 0, until=switching)
    return run, versions, switching.result()


SYNTHETIC_CHUNK = 5000
PAGE = 10_000


async def seed_synthetic(settings: Settings, database_url: str, items: int) -> int:
    """``items`` synthetic items beside the demo catalogue (random unit content vectors of
    the served content encoder's width, recorded as its own), then a user encoder over the
    whole catalogue as the next version (random weights, as ``--compare-dim``); waits
    until Recommend is answered in its space, and returns the version."""
    pool = await open_pool(database_url, 2)
    encoders = TritonEncoders(settings.triton_grpc_url, timeout_ms=10_000)
    try:
        served = await encoders.content_encoder()
        assert served is not None, "Triton serves no content encoder"
        rng = np.random.default_rng(0)
        present = await item_store.count_items(pool)  # a kept --state-dir has them already
        for start in range(0 if present < items else items, items, SYNTHETIC_CHUNK):
            chunk = [
                Item(f"synthetic-{n}", f"Synthetic item {n}", categories=(f"synthetic-{n % 20}",))
                for n in range(start, min(items, start + SYNTHETIC_CHUNK))
            ]
            vectors = rng.standard_normal((len(chunk), served.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            await item_store.upsert_items(pool, chunk, vectors, encoders.content_fingerprint)
            print(f"\rsynthetic items: {start + len(chunk):,} of {items:,}", end="", flush=True)
        print()
    finally:
        await encoders.close()
        await pool.close()
    return await export_width(settings, database_url, DEMO_DIM)


def newest_takes_tokens(settings: Settings) -> bool:
    """Whether the newest user_encoder version in the repository (the one Triton serves)
    holds its items' vectors, so that a history of known items sends no content rows."""
    folder = settings.model_repository / repository.USER_ENCODER
    versions = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
    return bool(versions) and (folder / str(max(versions)) / repository.KNOWN_ITEMS).exists()


def orchestrator_processes(stack: Stack) -> list[int]:
    """The processes that serve: the server, or its workers when it runs several."""
    server = next(c.process.pid for c in stack.children if c.name == "server")
    children = Path(f"/proc/{server}/task/{server}/children").read_text().split()
    workers = [
        int(pid)
        for pid in children
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()  # not its tracker
    ]
    return workers or [server]


def orchestrator_memory(stack: Stack) -> str:
    """RSS now and at its peak (VmHWM) of each orchestrator process."""
    lines = []
    for pid in orchestrator_processes(stack):
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        rss, peak = (int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))
        lines.append(f"- orchestrator process {pid}: RSS {rss:,.0f} MiB (peak {peak:,.0f} MiB)")
    return "\n".join(lines)


def index_built(settings: Settings, items: int, version: int) -> bool:
    """Whether every worker of the server logged its item-vector index built over at least
    ``items`` items for user_encoder ``version`` (not one over the items a version before
    knew, nor one of an earlier run in a kept ``--state-dir``)."""
    log = settings.state_dir / "logs" / "server.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    built = r"vector index built \(item vectors\): (\d+) items, .*, user_encoder v(\d+)"
    sizes = [int(n) for n, v in re.findall(built, text) if int(v) == version]
    return sum(size >= items for size in sizes) >= settings.workers


def compare(base: list[Run], other: list[Run], base_name: str, other_name: str) -> str:
    """The other run's Recommend figures as ratios of the base run's."""

    def recommend(runs: list[Run], concurrency: int) -> Run:
        return next(
            r for r in runs if r.name.startswith("Recommend (") and r.concurrency == concurrency
        )

    rows = [
        ("p50 at c=1", recommend(base, 1).percentile(50), recommend(other, 1).percentile(50), "ms"),
        ("p99 at c=8", recommend(base, 8).percentile(99), recommend(other, 8).percentile(99), "ms"),
        ("c=32 throughput", recommend(base, 32).throughput, recommend(other, 32).throughput, "/s"),
    ]  # fmt: skip
    return "\n".join(
        f"- Recommend {name}: {b:.1f} {unit} {base_name}, {w:.1f} {unit}"
        f" {other_name} = {w / max(b, 1e-9):.2f}x"
        for name, b, w, unit in rows
    )


def report_rows(runs: list[Run]) -> str:
    lines = [
        "| call | concurrency | requests/s | p50 ms | p95 ms | p99 ms | max ms | errors"
        " | degraded |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.name} | {r.concurrency} | {r.throughput:.0f} | {r.percentile(50):.1f} | "
            f"{r.percentile(95):.1f} | {r.percentile(99):.1f} | {r.percentile(100):.1f} | "
            f"{sum(r.errors.values())} {dict(r.errors) or ''} | {r.degraded} |"
        )
    return "\n".join(lines)


def report(runs: list[Run], command: str) -> str:
    lines = [report_rows(runs)]
    by = {(r.name == PLAIN, r.concurrency): r for r in runs if r.name in (PLAIN, BARE)}
    ratio = by[(True, 1)].percentile(50) / max(by[(False, 1)].percentile(50), 1e-9)
    p99_8 = by[(True, 8)].percentile(99)
    rps_32 = by[(True, 32)].throughput
    checks: list[tuple[str, bool | None]] = [
        (f"Recommend p50 / bare Triton p50 at c=1: {ratio:.2f}x (target <= 1.5x)", ratio <= 1.5),
        *floor(runs, by[(False, 1)].percentile(50)),
        (f"Recommend p99 at c=8: {p99_8:.1f} ms (target <= 50 ms)", p99_8 <= 50),
        (f"Recommend throughput at c=32: {rps_32:.0f}/s (target >= 500/s)", rps_32 >= 500),
    ]
    for name in (QUERY_NEW, QUERY_CACHED):
        with_query = next((r for r in runs if r.name == name), None)
        if with_query is not None:
            plain = by[(True, 1)].percentile(50)
            checks.append(
                (
                    f"{name} at c=1: p50 {with_query.percentile(50):.1f} ms"
                    f" ({with_query.percentile(50) / max(plain, 1e-9):.2f}x plain Recommend's"
                    f" {plain:.1f} ms), p99 {with_query.percentile(99):.1f} ms",
                    None,
                )
            )
    for loaded in (r for r in runs if r.name.startswith(WITH_FEEDBACK)):
        quiet = by[(True, loaded.concurrency)]
        checks.append(
            (
                f"{loaded.name} at c={loaded.concurrency}: p50 {loaded.percentile(50):.1f} ms"
                f" ({loaded.percentile(50) / quiet.percentile(50):.2f}x without feedback),"
                f" p99 {loaded.percentile(99):.1f} ms"
                f" ({loaded.percentile(99) / quiet.percentile(99):.2f}x)"
                + (" (target <= 50 ms)" if loaded.concurrency == 8 else ""),
                loaded.percentile(99) <= 50 if loaded.concurrency == 8 else None,
            )
        )
    checks += [(f"{r.name} at c={r.concurrency}: {r.cpu}", None) for r in runs if r.cpu]
    lines.append("")
    verdicts = {True: "PASS ", False: "MISS ", None: ""}
    lines += [f"- {verdicts[ok]}{text}" for text, ok in checks]
    lines.append(f"\nreproduce: {command}")
    return "\n".join(lines)


def floor(runs: list[Run], bare_ms: float) -> list[tuple[str, None]]:
    """What the two calls a Recommend makes in any case cost at c=1 (it adds the state
    read and the ranking to them): the bare Triton call and the hop into the orchestrator."""
    empty = next((r for r in runs if r.name == EMPTY), None)
    if empty is None:
        return []
    hop = empty.percentile(50)
    return [
        (
            f"bare Triton p50 + empty orchestrator call p50 at c=1: {bare_ms:.1f} + {hop:.1f}"
            f" ms = {(bare_ms + hop) / max(bare_ms, 1e-9):.2f}x bare Triton",
            None,
        )
    ]


def _value(text: str) -> object:
    """A number or boolean when the text reads as one, else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a ranking parameter to set before measuring (repeatable)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="orchestrator processes (RECSYS_WORKERS)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=1,
        help="client connections Recommend is spread over (a worker serves whole connections)",
    )
    parser.add_argument(
        "--synthetic-items",
        type=int,
        default=0,
        help="add this many items with synthetic content vectors (beyond what MiniLM can"
        " embed here) and serve a random-weight user encoder over all of them",
    )
    parser.add_argument(
        "--compare-dim",
        type=int,
        default=None,
        help="measure again with a user encoder this wide exported as the next version",
    )
    parser.add_argument(
        "--compare-content-rows",
        action="store_true",
        help="measure again with a version that takes every history position's content",
    )
    parser.add_argument(
        "--switch",
        action="store_true",
        help="last, measure Recommend at c=8 while the next version is exported and followed",
    )
    parser.add_argument(
        "--feedback-rate",
        type=float,
        default=0.0,
        help="also measure Recommend while this many feedback events/s flow",
    )
    args = parser.parse_args()
    params = {name: _value(text) for name, text in (p.split("=", 1) for p in args.param)}
    state = args.state_dir or Path(tempfile.mkdtemp(prefix="recsys-bench-"))
    settings = side_by_side_settings(
        state_dir=state,
        demo_items=args.items,
        triton_timeout_ms=1000,
        workers=args.workers,
    )
    stack = Stack(settings, simulate=False, dashboard=False)
    other: list[Run] = []
    names = ("with the demo encoder (dim 64)", f"with dim {args.compare_dim}")
    if args.compare_content_rows:
        names = ("sending known items' tokens alone", "sending every position's content")
    try:
        stack.start()
        if args.synthetic_items:
            assert stack.settings.database_url is not None  # set by start()
            url = stack.settings.database_url.get_secret_value()
            version = asyncio.run(seed_synthetic(stack.settings, url, args.synthetic_items))
            print(f"serving user_encoder v{version} over the synthetic catalogue", flush=True)
        total = args.items + args.synthetic_items
        index_items = int(0.9 * total) if total >= settings.exact_search_below else 0
        runs = asyncio.run(
            measure(
                stack.settings, args.users, args.seconds, params, args.feedback_rate,
                index_items=index_items, connections=args.connections,
                orchestrators=frozenset(orchestrator_processes(stack)),
            )
        )  # fmt: skip
        if args.compare_dim or args.compare_content_rows:
            assert stack.settings.database_url is not None  # set by start()
            database_url = stack.settings.database_url.get_secret_value()
            dim, every = args.compare_dim or DEMO_DIM, args.compare_content_rows
            version = asyncio.run(export_width(stack.settings, database_url, dim, every))
            print(f"serving user_encoder v{version} (dim {dim}) {names[1]}", flush=True)
            other = asyncio.run(
                measure(
                    stack.settings, args.users, args.seconds, {}, args.feedback_rate,
                    seed_histories=False, orchestrators=frozenset(orchestrator_processes(stack)),
                )
            )  # fmt: skip
        if args.switch:
            assert stack.settings.database_url is not None  # set by start()
            database_url = stack.settings.database_url.get_secret_value()
            switched = asyncio.run(
                measure_switch(stack.settings, database_url, args.users, index_items)
            )
        memory = orchestrator_memory(stack)
    finally:
        stack.stop()
    command = "python -m benchmarks.recommend " + " ".join(sys.argv[1:])
    print(report(runs, command))
    print(memory)
    if args.switch:
        run, versions, answered_s = switched
        print(
            f"\n{SWITCH} (c={run.concurrency}, {run.seconds:.1f} s; the new version answered"
            f" {answered_s:.1f} s after the export began):\n\n{report_rows([run])}\n\n- answers"
            " by model version: "
            + ", ".join(f"{v or 'fallback'} {n}" for v, n in sorted(versions.items()))
        )
    if other:
        print(f"\nWith the next version, {names[1]}:\n")
        print(report(other, command))
        print("\n" + compare(runs, other, *names))


if __name__ == "__main__":
    main()
