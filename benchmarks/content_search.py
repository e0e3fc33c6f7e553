"""Free-text queries (and SimilarItems' anchors) at catalogue sizes beyond what MiniLM can
embed here: the content retrieval (``Retriever.by_content``) as the exact scan and through
the served FAISS content index, on the same queries, in one process.

    python -m benchmarks.content_search [--sizes 10000 100000 1000000] [--queries 200]

Content embeddings are synthetic and clustered (``benchmarks.synthetic``, 384-d as
MiniLM's, unit length), queries a unit mix of a few topics. Filters as the serving path
applies them: none; 90% of the items available; half of the categories excluded. Reported
per size and filter: p50 / p99 of one retrieval of a 300-item pool, both ways; recall@100
of the served pool against the exact one; the content index's build time and bytes per
item (the exact scan needs none beyond the content itself, 1,536 bytes per item).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import faiss
import numpy as np

from benchmarks.synthetic import synthetic_catalogue, synthetic_index
from serving.adapters.vectorsearch import FaissRetriever
from serving.core.index import IndexArrays
from serving.core.newitems import unit_rows
from serving.core.ranking.retrieve import MatrixProduct, Retriever

CONTENT, DIM, POOL = 384, 64, 300
FILTERS = ("none", "available (90%)", "half the categories out")


def allowed_for(rule: str, categories: np.ndarray, q: int, rng: np.random.Generator) -> np.ndarray:
    allowed = np.ones(len(categories), bool)
    if rule != "none":
        allowed &= rng.random(len(categories)) >= 0.1
    if rule == "half the categories out":
        allowed &= (categories + q) % 20 < 10
    return allowed


def timed_pools(
    retriever: Retriever, arrays: IndexArrays, queries: np.ndarray, masks: list[np.ndarray]
) -> tuple[float, float, list[np.ndarray]]:
    latencies, pools = [], []
    for query, allowed in zip(queries, masks, strict=True):
        started = time.perf_counter()
        found = retriever.by_content(arrays, query, allowed, POOL).candidates
        latencies.append((time.perf_counter() - started) * 1000)
        pools.append(found[allowed[found]])
    return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)), pools


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    print(
        "| items | filter | exact p50 / p99 ms | served p50 / p99 ms | recall@100 |"
        " index build s | index bytes/item |\n|---:|---|---|---|---:|---:|---:|"
    )
    for size in args.sizes:
        rng = np.random.default_rng(size)
        texts = synthetic_catalogue(size, CONTENT, rng)
        content = unit_rows(texts.vectors)
        queries = unit_rows(texts.users(args.queries, rng))
        categories = texts.categories
        del texts
        index = synthetic_index(synthetic_catalogue(size, DIM, rng), CONTENT, rng, content=content)
        del content
        gc.collect()
        served = FaissRetriever(exact_below=0, background=False)
        started = time.perf_counter()
        served.content.for_arrays(index.arrays)  # builds it (not in the background here)
        build_s = time.perf_counter() - started
        built = served.content.built
        assert built is not None
        index_bytes = faiss.serialize_index(built.index).nbytes / size
        for rule in FILTERS:
            masks = [allowed_for(rule, categories, q, rng) for q in range(args.queries)]
            e50, e99, exact = timed_pools(MatrixProduct(), index.arrays, queries, masks)
            s50, s99, fast = timed_pools(served, index.arrays, queries, masks)
            recall = np.mean(
                [
                    len(np.intersect1d(f[:100], e[:100])) / min(100, len(e))
                    for f, e in zip(fast, exact, strict=True)
                ]
            )
            print(
                f"| {size:,} | {rule} | {e50:.2f} / {e99:.2f} | {s50:.2f} / {s99:.2f} |"
                f" {recall:.3f} | {build_s:.1f} | {index_bytes:.0f} |",
                flush=True,
            )
        del index, served, built
        gc.collect()
    print(f"reproduce: python -m benchmarks.content_search {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
