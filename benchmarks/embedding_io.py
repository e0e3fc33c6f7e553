"""Embeddings written to and read from PostgreSQL: as text (every element a Python float
on the way, psycopg's default) against the binary ``real[]`` format the items adapter uses
(``serving/adapters/postgres/vectors.py``), in one process, alternating.

    python -m benchmarks.embedding_io [--items 20000] [--rounds 3]

Starts an embedded PostgreSQL in a temporary folder and a scratch table of (id, real[]);
each round writes ``--items`` 384-d vectors in batches of 5,000 (one transaction each, as
UpsertItems and the benchmarks' seeding do) and reads them back a page of 10,000 at a time
(as the index sync loads a catalogue), once each way. Reported: the median items/s of each
way and their ratio, and that both ways read back the same float32 values.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres.db import open_pool, start_embedded
from serving.adapters.postgres.vectors import embeddings_as_numpy

WIDTH, BATCH, PAGE = 384, 5000, 10_000


async def write(
    pool: AsyncConnectionPool, ids: list[str], vectors: np.ndarray, binary: bool
) -> None:
    for start in range(0, len(ids), BATCH):
        part = range(start, min(start + BATCH, len(ids)))
        async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if binary:
                rows = [(ids[i], vectors[i]) for i in part]
                await embeddings_as_numpy(cur).executemany(
                    "INSERT INTO scratch VALUES (%s, %b)", rows
                )
            else:
                rows = [(ids[i], vectors[i].tolist()) for i in part]
                await cur.executemany("INSERT INTO scratch VALUES (%s, %s)", rows)


async def read(pool: AsyncConnectionPool, binary: bool) -> np.ndarray:
    pages: list[np.ndarray] = []
    after = ""
    while True:
        async with pool.connection() as conn, conn.cursor(binary=binary) as cur:
            await embeddings_as_numpy(cur).execute(
                "SELECT item_id, embedding FROM scratch WHERE item_id > %s"
                " ORDER BY item_id LIMIT %s",
                (after, PAGE),
            )
            rows = await cur.fetchall()
        if not rows:
            return np.concatenate(pages)
        pages.append(np.stack([np.asarray(e, np.float32) for _, e in rows]))
        after = rows[-1][0]


async def measure(url: str, items: int, rounds: int) -> None:
    pool = await open_pool(url, 2)
    rng = np.random.default_rng(0)
    ids = [f"item-{n:08d}" for n in range(items)]
    vectors = rng.standard_normal((items, WIDTH)).astype(np.float32)
    rates: dict[tuple[str, bool], list[float]] = {}
    async with pool.connection() as conn:
        await conn.execute("CREATE TABLE scratch (item_id text PRIMARY KEY, embedding real[])")
    for _ in range(rounds):
        for binary in (False, True):
            async with pool.connection() as conn:
                await conn.execute("TRUNCATE scratch")
            started = time.perf_counter()
            await write(pool, ids, vectors, binary)
            rates.setdefault(("write", binary), []).append(items / (time.perf_counter() - started))
            started = time.perf_counter()
            loaded = await read(pool, binary)
            rates.setdefault(("read", binary), []).append(items / (time.perf_counter() - started))
            assert np.array_equal(loaded, vectors), "read back other values"
    await pool.close()
    print("| step | text items/s | binary items/s | binary / text |\n|---|---:|---:|---:|")
    for step in ("write", "read"):
        text, binary_rate = (statistics.median(rates[(step, b)]) for b in (False, True))
        print(
            f"| {step} ({items:,} x {WIDTH}-d) | {text:,.0f} | {binary_rate:,.0f}"
            f" | {binary_rate / text:.1f}x |"
        )
    print("both ways read back exactly the float32 vectors written")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="embedding-io-") as state:
        server = start_embedded(Path(state))
        try:
            asyncio.run(measure(server.get_uri(), args.items, args.rounds))
        finally:
            server.cleanup()
    print(
        "\nreproduce: python -m benchmarks.embedding_io"
        f" --items {args.items} --rounds {args.rounds}"
    )


if __name__ == "__main__":
    main()
