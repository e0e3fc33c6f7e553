"""The orchestrator's own work per Recommend at catalogue sizes beyond what MiniLM can
embed here: the whole ranking pipeline (filter, retrieve, blend, explore, diversify,
explain) with exact retrieval and with the served FAISS retriever, in one process.

    python -m benchmarks.retrieval [--sizes 10000 100000 1000000] [--requests 300]
                                   [--known 1000]

Item vectors are synthetic and clustered (``benchmarks.synthetic``), content embeddings
random unit vectors of MiniLM's width (384); there is no Triton, gRPC or PostgreSQL in
this measurement, only what one request costs the orchestrator after the user encoder
answered. Each request: a user with 30 seen items (excluded, as the default parameters
do), the default parameters (Thompson exploration, diversity), 10% of the catalogue
unavailable, k = 10 from a pool of 300. Reported per size: p50 / p99 of one ranking,
both retrievers on the same requests; the index build; recall@100 of the served pool
against the exact pool; memory per item and the process's peak RSS; and the time of one
computation of the catalogue-wide signals. With ``--known N`` the model knows only the
first N items: the rest are placed by their text (``newitems``), as after a catalogue is
loaded past what the model was trained on.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from dataclasses import dataclass, replace

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.synthetic import synthetic_catalogue, synthetic_index
from serving.adapters.vectorsearch import FaissRetriever
from serving.core.domain import EventType
from serving.core.index import ItemIndex
from serving.core.itemspace import UserEncoding
from serving.core.parameters import Parameters
from serving.core.ranking.filter import Rules
from serving.core.ranking.pipeline import RankingPipeline
from serving.core.ranking.retrieve import MatrixProduct, Retriever
from serving.core.ranking.signals import catalogue_signals

DIM, CONTENT = 64, 384
SEEN, POOL, K = 30, 300, 10


@dataclass(frozen=True)
class Measured:
    p50_ms: float
    p99_ms: float
    pools: list[np.ndarray]


def rank_all(
    retriever: Retriever, index: ItemIndex, users: np.ndarray, seen: list[list[str]]
) -> Measured:
    pipeline = RankingPipeline(retriever, np.random.default_rng(0))
    params = Parameters()
    half_lives = (params.popularity_half_life_hours, params.freshness_half_life_hours)
    now = time.time()
    signals = catalogue_signals(index, half_lives, now)
    signals = replace(signals, available=signals.available & (np.arange(len(index)) % 10 != 0))
    latencies, pools = [], []
    for user, history in zip(users, seen, strict=True):
        encoding = UserEncoding(user, np.full(SEEN, 1 / SEEN, np.float32), "1")
        events = [(item_id, EventType.CLICK) for item_id in history]
        started = time.perf_counter()
        pipeline.rank(index, signals, params, Rules(frozenset(history)), K, events, encoding)
        latencies.append((time.perf_counter() - started) * 1000)
        pools.append(pool(retriever, index, user, signals.available, history))
    return Measured(float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)), pools)


def pool(
    retriever: Retriever, index: ItemIndex, user: np.ndarray, available: np.ndarray, seen: list[str]
) -> np.ndarray:
    """The retrieval pool of one request (outside the timed call)."""
    allowed = available.copy()
    allowed[[index.positions[i] for i in seen]] = False
    return retriever.retrieve(index.arrays, user, allowed, POOL).candidates


def signals_ms(index: ItemIndex, repeats: int = 5) -> float:
    """The median time of one computation of the catalogue-wide signals (popularity,
    freshness, availability, the least-shown items): the server's worker thread does it
    at most once a second, off the requests' path."""
    params = Parameters()
    half_lives = (params.popularity_half_life_hours, params.freshness_half_life_hours)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        catalogue_signals(index, half_lives, time.time())
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--known",
        type=int,
        default=None,
        help="the model knows only the first N items (the rest newer than it, as after a"
        " bulk load); both indexes are built before measuring",
    )
    args = parser.parse_args()
    # One BLAS thread, as the server runs (serving/server.py): the figures are then what a
    # request costs there, not what a second thread spinning beside it adds or saves.
    threadpool_limits(1, user_api="blas")
    print(
        "| items | retrieval | rank p50 ms | rank p99 ms | index build s | recall@100 |"
        " bytes/item (vectors + content + index) | RSS MiB |"
        "\n|---:|---|---:|---:|---:|---:|---|---:|"
    )
    for size in args.sizes:
        rng = np.random.default_rng(size)
        synthetic = synthetic_catalogue(size, DIM, rng)
        index = synthetic_index(synthetic, CONTENT, rng, learned=args.known)
        users = synthetic.users(args.requests, rng)
        seen = [
            [index.arrays.ids[i] for i in rng.choice(size, SEEN, replace=False)]
            for _ in range(args.requests)
        ]
        del synthetic
        gc.collect()
        exact = rank_all(MatrixProduct(), index, users, seen)
        served = FaissRetriever(exact_below=0, background=False)
        started = time.perf_counter()
        served.retrieve(index.arrays, users[0], np.ones(size, bool), 1)
        build_s = time.perf_counter() - started
        assert served.built is not None
        if args.known is not None:  # new items' similarity goes through the content index
            served.prepare(index.arrays)
        fast = rank_all(served, index, users, seen)
        recall = np.mean(
            [
                len(np.intersect1d(f[:100], e[:100])) / 100
                for f, e in zip(fast.pools, exact.pools, strict=True)
            ]
        )
        arrays = index.arrays
        vector_bytes = arrays.vectors.itemsize * DIM
        content_bytes = arrays.content.itemsize * CONTENT
        index_bytes = faiss.serialize_index(served.built.index).nbytes / size
        rss = rss_mib()
        for name, measured, build, rec, index_size in (
            ("exact", exact, "-", "1.000", "0"),
            (
                f"FAISS IVF{served.built.lists}, probes {served.probes}",
                fast,
                f"{build_s:.1f}",
                f"{recall:.3f}",
                f"{index_bytes:.0f}",
            ),
        ):
            print(
                f"| {size:,} | {name} | {measured.p50_ms:.2f} | {measured.p99_ms:.2f} | {build}"
                f" | {rec} | {vector_bytes} + {content_bytes} + {index_size} | {rss:.0f} |",
                flush=True,
            )
        print(f"  - catalogue signals at {size:,} items: {signals_ms(index):.1f} ms", flush=True)
        del index, served
        gc.collect()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:.0f} MiB")
    print(f"reproduce: python -m benchmarks.retrieval {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
