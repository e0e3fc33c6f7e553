"""How long writing a batch of impressions holds the orchestrator's event loop: the COPY
data formatted on the loop against formatted in a worker thread (the served default).

    python -m benchmarks.impression_writes [--batches 50 200 1000] [--repeats 10]

Starts an embedded PostgreSQL in a temporary folder, writes 1,000 items, then writes
batches of recommendations of 10 impressions each (five score components, as Recommend
logs them) with ``write_recommendations``, both ways, alternating, in one process. While
a batch is written, a ticker on the same loop sleeps 1 ms at a time and records how late
it wakes: the largest delay is what a request arriving then waits before the server even
reads it. Reported per batch size and way: the median write time, the median and worst
of the largest delays, and the process's CPU time per recommendation.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from serving.adapters.postgres import items as item_store
from serving.adapters.postgres.db import migrate, open_pool, start_embedded
from serving.adapters.postgres.impressions import write_recommendations
from serving.core.domain import Item, LoggedRecommendation, Recommendation, ScoredItem

ITEMS, K, TICK_S = 1000, 10, 0.001
COMPONENTS = ("relevance", "popularity", "freshness", "exploration", "diversity")


def batch(ids: list[str], size: int, rng: np.random.Generator) -> list[LoggedRecommendation]:
    logged = []
    for _ in range(size):
        shown = rng.choice(len(ids), K, replace=False)
        items = tuple(
            ScoredItem(
                ids[i],
                float(rng.random()),
                {name: float(rng.random()) for name in COMPONENTS},
                (ids[shown[0]],),
                float(rng.random()),
            )
            for i in shown
        )
        recommendation = Recommendation(str(uuid.uuid4()), items, "1", False, "control", 1)
        logged.append(LoggedRecommendation(recommendation, "user", "session", 5.0))
    return logged


async def largest_delay(work: asyncio.Task[None]) -> float:
    """The ticker: the largest lateness (s) of a 1 ms sleep until ``work`` is done."""
    worst = 0.0
    while not work.done():
        asked = time.perf_counter()
        await asyncio.sleep(TICK_S)
        worst = max(worst, time.perf_counter() - asked - TICK_S)
    await work
    return worst


async def measure(url: str, sizes: list[int], repeats: int) -> None:
    pool = await open_pool(url, 2)
    rng = np.random.default_rng(0)
    ids = [f"item-{n}" for n in range(ITEMS)]
    vectors = rng.standard_normal((ITEMS, 384)).astype(np.float32)
    await item_store.upsert_items(pool, [Item(i, i) for i in ids], vectors, "synthetic")
    print("| batch (recommendations) | formatted | write p50 ms | largest loop delay p50 / max ms"
          " | CPU ms per recommendation |")  # fmt: skip
    print("|---:|---|---:|---|---:|")
    for size in sizes:
        results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
        for _ in range(repeats + 1):  # the first round warms up and is dropped
            for offload in (False, True):
                logged = batch(ids, size, rng)
                cpu, wall = time.process_time(), time.perf_counter()
                work = asyncio.create_task(write_recommendations(pool, logged, offload=offload))
                delay = await largest_delay(work)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                results[offload].append((wall, delay, cpu / size))
        for offload in (False, True):
            walls, delays, cpus = zip(*results[offload][1:], strict=True)
            print(
                f"| {size} | {'in a thread' if offload else 'on the loop'}"
                f" | {statistics.median(walls) * 1000:.1f}"
                f" | {statistics.median(delays) * 1000:.1f} / {max(delays) * 1000:.1f}"
                f" | {statistics.median(cpus) * 1000:.3f} |"
            )
    await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="impression-writes-") as state:
        server = start_embedded(Path(state))
        try:
            url = server.get_uri()
            migrate(url)
            asyncio.run(measure(url, args.batches, args.repeats))
        finally:
            server.cleanup()
    batches = " ".join(map(str, args.batches))
    print(
        "\nreproduce: python -m benchmarks.impression_writes"
        f" --batches {batches} --repeats {args.repeats}"
    )


if __name__ == "__main__":
    main()
