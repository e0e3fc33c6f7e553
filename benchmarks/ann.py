"""Vector-search libraries on the same vectors: build time, one-query latency, memory and
recall against exact search, unfiltered and with the serving filters on.

    python -m benchmarks.ann [--items 100000] [--dim 64] [--queries 300] [--k 300]

The vectors are synthetic and clustered (``synthetic_catalogue``: item vectors around
topic centres, as learned embeddings are; user vectors a mix of a few topics), since no
trained model covers a million items here. Every library searches for the top ``k`` (the
candidate pool, 300 by default) of one query at a time on one thread, as a Recommend
does; recall@100 is the share of exact search's allowed top 100 that the library's top
100 holds. Filters, as the serving path applies them:

- *available*: 10% of items unavailable plus 50 seen items per user;
- *category rule*: additionally only one category of 20 (about 5% of the catalogue);
- *half the categories out*: available, and 10 of the 20 categories excluded (a filter
  that follows the topics, the hard case for an inverted file).

Libraries that cannot filter inside the search (hnswlib with a Python callback is too
slow, usearch has none in Python) ask for more and drop the disallowed ones afterwards.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from benchmarks.synthetic import SyntheticCatalogue, synthetic_catalogue, synthetic_index
from serving.adapters.vectorsearch import FaissRetriever
from serving.core.ranking.retrieve import top_k

POST_FILTER_MOST = 5000
Search = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
"""(query, allowed mask, k) -> positions, best first."""


@dataclass(frozen=True)
class Built:
    name: str
    build_s: float
    bytes_per_item: float
    search: Search


def exact(vectors: np.ndarray) -> Built:
    def search(query: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
        return top_k(np.where(allowed, vectors @ query, -np.inf), k)

    return Built("exact (numpy)", 0.0, vectors.itemsize * vectors.shape[1], search)


def faiss_index(vectors: np.ndarray, kind: str, ef: int) -> Built:
    import faiss as typed_faiss

    faiss: Any = typed_faiss  # its bundled stubs describe the SWIG layer, not these wrappers

    faiss.omp_set_num_threads(2)
    started = time.perf_counter()
    n, dim = vectors.shape
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        name = f"FAISS HNSW32 flat, ef {ef}"
    elif kind == "hnsw-sq8":
        index = faiss.IndexHNSWSQ(
            dim, faiss.ScalarQuantizer.QT_8bit, 32, faiss.METRIC_INNER_PRODUCT
        )
        index.hnsw.efConstruction = 80
        name = f"FAISS HNSW32 SQ8, ef {ef}"
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        name = f"FAISS IVF{nlist} flat, nprobe {ef}"
    if not index.is_trained:
        index.train(vectors[:: max(1, n // 50_000)])
    index.add(vectors)
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    stored = faiss.serialize_index(index).nbytes

    def search(query: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
        selector = faiss.IDSelectorBitmap(np.packbits(allowed, bitorder="little"))
        if kind == "ivf":
            params = faiss.SearchParametersIVF(sel=selector, nprobe=ef)
        else:
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(ef, k))
        _, found = index.search(query[None], k, params=params)
        return np.asarray(found[0][found[0] >= 0])

    return Built(name, build_s, stored / n, search)


def hnswlib_index(vectors: np.ndarray, ef: int) -> Built:
    import hnswlib

    started = time.perf_counter()
    n, dim = vectors.shape
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, M=32, ef_construction=80)
    index.add_items(vectors, num_threads=2)
    build_s = time.perf_counter() - started
    index.set_num_threads(1)

    def search(query: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
        def find(want: int) -> np.ndarray:
            index.set_ef(max(ef, 2 * want))
            labels, _ = index.knn_query(query, k=want)
            return np.asarray(labels[0], np.int64)

        return _post_filtered(find, allowed, k)

    return Built(f"hnswlib M32, ef {ef}", build_s, dim * 4 + 32 * 2 * 4 + 8, search)


def usearch_index(vectors: np.ndarray, dtype: str, ef: int) -> Built:
    from usearch.index import Index

    started = time.perf_counter()
    n, dim = vectors.shape
    index = Index(
        ndim=dim, metric="ip", dtype=dtype, connectivity=32, expansion_add=80,
        expansion_search=ef,
    )  # fmt: skip
    index.add(np.arange(n), vectors, threads=2)
    build_s = time.perf_counter() - started

    def search(query: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
        return _post_filtered(
            lambda want: index.search(query, want, threads=1).keys.astype(np.int64), allowed, k
        )

    return Built(f"usearch {dtype} M32, ef {ef}", build_s, index.memory_usage / n, search)


def served(catalogue: SyntheticCatalogue, rng: np.random.Generator) -> Built:
    """The orchestrator's retriever (``serving.adapters.vectorsearch``) on the same vectors."""
    index = synthetic_index(catalogue, 8, rng)
    retriever = FaissRetriever(exact_below=0, background=False)
    started = time.perf_counter()
    retriever.retrieve(index.arrays, catalogue.vectors[0], np.ones(len(index), bool), 1)
    built = retriever.built
    assert built is not None
    stored = faiss.serialize_index(built.index).nbytes

    def search(query: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
        return retriever.retrieve(index.arrays, query, allowed, k).candidates

    return Built(
        f"served: IVF{built.lists} flat, probes {retriever.probes}, exact fallback",
        time.perf_counter() - started,
        stored / len(index),
        search,
    )


def _post_filtered(find: Callable[[int], np.ndarray], allowed: np.ndarray, k: int) -> np.ndarray:
    """Ask for more than ``k`` until ``k`` allowed ones come back (or ``POST_FILTER_MOST``
    were asked for: a graph index cannot return much more)."""
    want = k
    while True:
        found = find(min(want, len(allowed)))
        kept: np.ndarray = found[allowed[found]]
        if len(kept) >= k or want >= min(len(allowed), POST_FILTER_MOST):
            return kept[:k]
        want *= 4


def filters(
    n: int, queries: int, categories: np.ndarray, rng: np.random.Generator
) -> dict[str, list[np.ndarray]]:
    available = rng.random(n) >= 0.1
    masks: dict[str, list[np.ndarray]] = {
        "none": [], "available": [], "category rule": [], "half the categories out": []
    }  # fmt: skip
    for q in range(queries):
        allowed = available.copy()
        allowed[rng.choice(n, 50, replace=False)] = False
        masks["none"].append(np.ones(n, bool))
        masks["available"].append(allowed)
        masks["category rule"].append(allowed & (categories == q % 20))
        masks["half the categories out"].append(allowed & ((categories + q) % 20 < 10))
    return masks


def measure(
    built: Built, queries: np.ndarray, masks: list[np.ndarray], truth: list[np.ndarray], k: int
) -> tuple[float, float, float]:
    """p50 ms, p99 ms, mean recall@100."""
    latencies, recalls = [], []
    for query, allowed, expected in zip(queries, masks, truth, strict=True):
        started = time.perf_counter()
        found = built.search(query, allowed, k)
        latencies.append((time.perf_counter() - started) * 1000)
        recalls.append(len(np.intersect1d(found[:100], expected[:100])) / min(100, len(expected)))
    return (
        float(np.percentile(latencies, 50)),
        float(np.percentile(latencies, 99)),
        float(np.mean(recalls)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    catalogue = synthetic_catalogue(args.items, args.dim, rng)
    queries = catalogue.users(args.queries, rng)
    masks = filters(args.items, args.queries, catalogue.categories, rng)
    base = exact(catalogue.vectors)
    truth = {
        name: [base.search(q, m, args.k) for q, m in zip(queries, ms, strict=True)]
        for name, ms in masks.items()
    }
    builders: list[Callable[[], Built]] = [
        lambda: base,
        lambda: served(catalogue, rng),
        lambda: faiss_index(catalogue.vectors, "hnsw", 64),
        lambda: faiss_index(catalogue.vectors, "hnsw", 600),
        lambda: faiss_index(catalogue.vectors, "hnsw-sq8", 64),
        lambda: faiss_index(catalogue.vectors, "ivf", 16),
        lambda: faiss_index(catalogue.vectors, "ivf", 48),
        lambda: hnswlib_index(catalogue.vectors, 64),
        lambda: usearch_index(catalogue.vectors, "f16", 64),
        lambda: usearch_index(catalogue.vectors, "i8", 64),
    ]
    print(
        f"{args.items:,} items, dim {args.dim}, top {args.k}, {args.queries} queries, one"
        " thread per query\n"
    )
    print(
        "| library | build s | bytes/item | filter | p50 ms | p99 ms | recall@100 |"
        "\n|---|---:|---:|---|---:|---:|---:|"
    )
    for build in builders:
        built = build()
        for name, ms in masks.items():
            p50, p99, recall = measure(built, queries, ms, truth[name], args.k)
            print(
                f"| {built.name} | {built.build_s:.1f} | {built.bytes_per_item:.0f} | {name}"
                f" | {p50:.2f} | {p99:.2f} | {recall:.3f} |",
                flush=True,
            )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {rss:.0f} MiB\nreproduce: python -m benchmarks.ann {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
