"""Memory per orchestrator process at catalogue sizes beyond what MiniLM can embed here:
what one replica holds for N items, by part, and its RSS.

    python -m benchmarks.memory [--items 1000000] [--chunk 0]

It holds what a serving orchestrator does: the item index loaded as the index sync loads
it (room reserved for every item, then every item in one upsert, or ``--chunk`` items
per upsert as the sync's paged load applies them), then placed in a model space (a
version carrying its items' vectors, kept as ``ItemSpace.served``, of which the index
keeps what it does not hold itself: ``ItemSpace.beyond``), and both FAISS indexes built
(item vectors and content). Items are synthetic (``benchmarks.synthetic``: clustered
64-d vectors, random unit 384-d content, one of 20 categories each); there is no gRPC,
PostgreSQL or Triton client in the process, whose own baseline (about 90 MiB,
RESULTS.md "Orchestrator start-up and memory") comes on top. RSS is read after a
garbage collection and ``malloc_trim``, so that it counts what is held, not what the
allocator kept of the load's garbage; the peak (``ru_maxrss``) is printed too. Last, it
times what one write costs at that size: adding an item (written into the columns'
spare rows) against editing one (a snapshot requests may read holds that row, so every
column is copied).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import faiss
import numpy as np

from benchmarks.synthetic import synthetic_catalogue
from serving.adapters.vectorsearch import FaissRetriever
from serving.core.domain import Item
from serving.core.index import ItemIndex, StoredItem
from serving.core.itemspace import ItemSpace

DIM, CONTENT = 64, 384
PER_ITEM_COLUMNS = (
    "published", "live", "window", "learned", "written", "content_written", "tokens"
)  # fmt: skip
LOAD_CHUNK = 100_000
"""Items generated at a time (the load itself is one upsert unless --chunk says)."""


def rss_mib() -> float:
    """Resident memory now, after returning freed memory to the system."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stored_items(
    ids: list[str], categories: np.ndarray, rng: np.random.Generator
) -> Iterator[StoredItem]:
    now = datetime.now(UTC)
    for start in range(0, len(ids), LOAD_CHUNK):
        content = rng.standard_normal((min(LOAD_CHUNK, len(ids) - start), CONTENT))
        content = (content / np.linalg.norm(content, axis=1, keepdims=True)).astype(np.float32)
        for offset, row in enumerate(content):
            item_id = ids[start + offset]
            category = f"c{categories[start + offset]}"
            yield StoredItem(Item(item_id, item_id, categories=(category,)), row, now, False)


def write_ms(index: ItemIndex, item_ids: list[str]) -> list[float]:
    """How long ``upsert`` of one item takes, for each of ``item_ids`` in turn."""
    times = []
    for item_id in item_ids:
        entry = StoredItem(
            Item(item_id, item_id), np.full(CONTENT, 0.05, np.float32), datetime.now(UTC), False
        )
        start = time.perf_counter()
        index.upsert([entry])
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=0, help="items per upsert (0: one)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows: list[tuple[str, float]] = [("process start", rss_mib())]
    catalogue = synthetic_catalogue(args.items, DIM, rng)
    ids = [f"item-{i:07d}" for i in range(args.items)]
    space = ItemSpace(
        version=1,
        max_len=50,
        vocabulary=tuple(ids),
        item_embeddings=catalogue.vectors,
        projection_weight=np.zeros((DIM, CONTENT), np.float32),
        projection_bias=np.zeros(DIM, np.float32),
        known_vectors=catalogue.vectors.copy(),
    ).served()
    categories = catalogue.categories.copy()
    del catalogue
    rows.append(("+ the model space (served)", rss_mib()))
    index = ItemIndex(CONTENT)
    index.reserve(args.items)
    items = stored_items(ids, categories, rng)
    if args.chunk:
        batch: list[StoredItem] = []
        for entry in items:
            batch.append(entry)
            if len(batch) == args.chunk:
                index.upsert(batch)
                batch = []
        index.upsert(batch)
    else:
        index.upsert(items)
    # Placed once loaded, as the index sync does: the space it keeps then holds no vector
    # of an item the index holds.
    index.set_space(space)
    del space
    index.in_categories(["c0"])  # the category lists a category rule builds
    rows.append(("+ the item index, placed in the space", rss_mib()))
    retriever = FaissRetriever(exact_below=0, background=False)
    retriever.prepare(index.arrays)
    rows.append(("+ both FAISS indexes", rss_mib()))
    print(f"| {args.items:,} items | RSS MiB |\n|---|---:|")
    for name, mib in rows:
        print(f"| {name} | {mib:,.0f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| peak (ru_maxrss) | {peak:,.0f} |")
    arrays = index.arrays
    assert index.space is not None
    known = index.space.known_vectors
    assert retriever.items.built is not None and retriever.content.built is not None
    parts = {
        "content (bfloat16)": arrays.content.nbytes,
        "item vectors (float32)": arrays.vectors.nbytes,
        "the space's known vectors (items the index lacks)": 0 if known is None else known.nbytes,
        "FAISS item-vector index": faiss.serialize_index(retriever.items.built.index).nbytes,
        "FAISS content index": faiss.serialize_index(retriever.content.built.index).nbytes,
        "per-item columns": sum(getattr(arrays, name).nbytes for name in PER_ITEM_COLUMNS)
        + sum(a.nbytes for a in (index.popularity, index.popularity_at))
        + sum(a.nbytes for a in (index.impressions, index.clicks)),
    }
    print("\n| part | bytes/item |\n|---|---:|")
    for name, size in parts.items():
        print(f"| {name} | {size / args.items:.0f} |")
    del arrays  # a snapshot held across an edit would keep a second copy of every column
    # The first write after placing copies the placed vectors into buffers with room.
    added = min(write_ms(index, [f"item-new-{n}" for n in range(6)])[1:])
    edited = min(write_ms(index, ids[:5]))
    print(f"\none write at {args.items:,} items: adding an item {added:.2f} ms, editing one")
    print(f"{edited:.1f} ms ({edited / added:.0f}x: it copies every column)")
    command = f"python -m benchmarks.memory --items {args.items}"
    print(f"\nreproduce: {command}" + (f" --chunk {args.chunk}" if args.chunk else ""))


if __name__ == "__main__":
    main()
