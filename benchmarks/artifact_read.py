"""Peak memory of reading one model version's item space, as an orchestrator does when it
follows a version: each matrix in one statement against 32 MB slices (``BLOB_SLICE``).

    python -m benchmarks.artifact_read [--items 1000000]

A fresh embedded PostgreSQL in a temporary folder holds one synthetic version of
``--items`` learned items (64-d learned embeddings and known vectors, as an export writes
them). Each way of reading runs in a process of its own, so its peak (``VmHWM``) is
its own; the figure is that peak above the process's resident memory before the read.
In one statement, libpq holds the whole result in an input buffer grown to its size while
psycopg copies it out: the matrix is in memory three times for a moment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from serving.adapters.postgres import artifacts
from serving.adapters.postgres.db import migrate, open_pool, start_embedded
from serving.core.itemspace import ItemSpace

DIM, CONTENT = 64, 384
VERSION = 1
WAYS = {"each matrix in one statement": 2**40, "32 MB slices": artifacts.BLOB_SLICE}


def synthetic_space(items: int) -> ItemSpace:
    rng = np.random.default_rng(0)
    return ItemSpace(
        version=VERSION,
        max_len=50,
        vocabulary=tuple(f"item{n:07d}" for n in range(items)),
        item_embeddings=rng.standard_normal((items, DIM), dtype=np.float32),
        projection_weight=rng.standard_normal((DIM, CONTENT), dtype=np.float32),
        projection_bias=np.zeros(DIM, np.float32),
        known_vectors=rng.standard_normal((items, DIM), dtype=np.float32),
    )


async def save(url: str, items: int) -> None:
    pool = await open_pool(url, 1)
    try:
        await artifacts.save_item_space(pool, synthetic_space(items), {})
    finally:
        await pool.close()


def status_mib(key: str) -> float:
    """VmRSS (resident now) or VmHWM (its peak) of this process. Not ``ru_maxrss``: Linux
    carries that over an exec from the forking parent, which holds the saved version."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def read(url: str, slice_bytes: int) -> dict[str, float]:
    """One read, in this process: the figures the parent prints."""
    pool = await open_pool(url, 1)
    try:
        before = status_mib("VmRSS")
        start = time.perf_counter()
        space = await artifacts.load_item_space(pool, VERSION, slice_bytes)
        seconds = time.perf_counter() - start
        assert space is not None and space.known_vectors is not None
        peak, held = status_mib("VmHWM"), status_mib("VmRSS")
        return {"above": peak - before, "held": held - before, "seconds": seconds}
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--read", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--slice", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        print(json.dumps(asyncio.run(read(args.read, args.slice))))
        return
    with tempfile.TemporaryDirectory(prefix="artifact-read-") as state:
        server = start_embedded(Path(state))
        try:
            url = str(server.get_uri())
            migrate(url)
            asyncio.run(save(url, args.items))
            results = {}
            for way, slice_bytes in WAYS.items():
                command = [sys.executable, "-m", "benchmarks.artifact_read"]
                child = [*command, "--read", url, "--slice", str(slice_bytes)]
                out = subprocess.run(child, check=True, stdout=subprocess.PIPE, text=True)
                results[way] = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            server.cleanup()
    matrices = 2 * args.items * DIM * 4 / 2**20
    print(f"\nreading a version of {args.items:,} items ({matrices:,.0f} MiB of matrices),")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC:\n")
    print("| read | peak above the process, MiB | held after, MiB | seconds |")
    print("|---|---:|---:|---:|")
    for way, figures in results.items():
        print(f"| {way} | {figures['above']:,.0f} | {figures['held']:,.0f} |"
              f" {figures['seconds']:.1f} |")  # fmt: skip
    whole, sliced = (results[way]["above"] for way in WAYS)
    print(f"\npeak in slices / in one statement: {sliced / whole:.2f}x")
    print(f"reproduce: python -m benchmarks.artifact_read --items {args.items}")


if __name__ == "__main__":
    main()
