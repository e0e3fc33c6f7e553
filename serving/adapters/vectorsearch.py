"""Retrieval through FAISS: an inverted-file index over the item vectors of the model's
space, with exact search beside it for whatever the index does not hold.

Below ``exact_below`` items one matrix product is faster, and search is exact. Above, an
IVF index (``IndexIVFFlat``, inner product; chosen by ``benchmarks.ann``) is built in a
background thread from one snapshot of the arrays, once per model space; until it is
ready, search stays exact. A built index is never changed: the rows written after its
snapshot (UpsertItems, new content) and the items newer than the model (set on the
known items' scale, ``newitems``) are scored exactly beside it, and their stale entries
in it are filtered out. So a new item is recommendable on the next call, and when those
rows grow past ``rebuild_after`` a new index is built and swapped in: serving never
pauses for it.

Filters (seen, disliked, excluded, categories, availability) are applied inside the
search, by a bitmap of the allowed rows: nothing disallowed takes a place in the top
list. A filter that allows a share ``f`` of the items probes ``PROBES / f**3`` lists (all
of them at most, which is exact): a filter that follows the topics, as category rules
do, leaves the lists nearest the user mostly empty, and probing in proportion to ``f``
alone lost recall (excluding half the categories: recall@100 0.93 at ``PROBES / f``,
0.99 at ``PROBES / f**3``; benchmarks/RESULTS.md). At most ``EXACT_ALLOWED`` allowed
items are scored exactly, which then costs less than any probing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import faiss
import numpy as np

from serving.core.index import IndexArrays
from serving.core.itemspace import ItemSpace
from serving.core.newitems import NewItems, user_scores
from serving.core.ranking.retrieve import Retrieval, best_of, top_k

log = logging.getLogger(__name__)

EXACT_BELOW = 50_000
"""Catalogues smaller than this are searched exactly (benchmarks/RESULTS.md)."""
PROBES = 32
"""Inverted lists probed per query when nothing is filtered out."""
EXACT_ALLOWED = 20_000
"""Filters that allow at most this many items are searched exactly over those."""
TRAINING_PER_LIST = 40
"""k-means sample per list (FAISS warns below 39)."""


@dataclass(frozen=True)
class BuiltIndex:
    """An IVF index over one snapshot's learned item vectors (ids are row positions)."""

    space: ItemSpace
    write: int
    """The latest vector write the snapshot holds (rows written later are scored beside)."""
    index: faiss.IndexIVFFlat
    lists: int
    seconds: float


def build_index(arrays: IndexArrays) -> BuiltIndex:
    """The IVF index over ``arrays``' items with a learned embedding (``2 * sqrt(n)``
    lists, trained on an evenly spread sample)."""
    started = time.perf_counter()
    assert arrays.space is not None and arrays.written is not None
    rows = np.flatnonzero(arrays.learned)
    vectors = np.ascontiguousarray(arrays.vectors[rows], np.float32)
    lists = max(1, int(2 * math.sqrt(len(rows))))
    index = faiss.IndexIVFFlat(
        faiss.IndexFlatIP(vectors.shape[1]), vectors.shape[1], lists, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.niter = 10
    index.train(vectors[:: max(1, len(rows) // (lists * TRAINING_PER_LIST))])
    index.add_with_ids(vectors, rows.astype(np.int64))
    write = int(arrays.written.max(initial=0))
    return BuiltIndex(arrays.space, write, index, lists, time.perf_counter() - started)


class FaissRetriever:
    """``Retriever`` over a FAISS IVF index, exact below ``exact_below`` items."""

    def __init__(
        self,
        exact_below: int = EXACT_BELOW,
        probes: int = PROBES,
        exact_allowed: int = EXACT_ALLOWED,
        rebuild_after: float = 0.05,
        background: bool = True,
    ) -> None:
        self.exact_below = exact_below
        self.probes = probes
        self.exact_allowed = exact_allowed
        self.rebuild_after = rebuild_after
        """Rebuild once the rows scored beside the index exceed this share of it."""
        self._background = background
        self.built: BuiltIndex | None = None
        self._building: threading.Thread | None = None
        self._beside: tuple[IndexArrays, BuiltIndex, np.ndarray] | None = None
        self._written_since = 0  # of those rows, the ones written after the build
        faiss.omp_set_num_threads(1)  # one query per request; processes use the cores

    def retrieve(
        self,
        arrays: IndexArrays,
        query: np.ndarray,
        allowed: np.ndarray,
        k: int,
        new_items: NewItems | None = None,
    ) -> Retrieval:
        new_items = new_items or NewItems()
        built = self._index_for(arrays)
        if built is None:
            return best_of(user_scores(arrays, query, new_items), allowed, k)
        beside = self._rows_beside(arrays, built)
        in_index = allowed.copy()
        in_index[beside] = False
        found = self._search(built, arrays, query, in_index, k)
        candidates = np.union1d(found, beside[allowed[beside]])
        scores = user_scores(arrays, query, new_items, candidates)

        def score(positions: np.ndarray) -> np.ndarray:
            return user_scores(arrays, query, new_items, np.asarray(positions, np.int64))

        # Relevance is standardised as exact search does it, against every item's score
        # (new items' calibrated), or an even sample of them.
        reference = score(arrays.spread_sample)
        return Retrieval(candidates[top_k(scores, k)], score, reference)

    def prepare(self, arrays: IndexArrays) -> None:
        """Start building the index for ``arrays``' model space (when it is large enough)
        in the background, before the first request asks for it."""
        self._index_for(arrays)

    def wait_until_built(self, timeout_s: float | None = None) -> None:
        """Block until a background build in progress is done (tests, benchmarks)."""
        building = self._building
        if building is not None:
            building.join(timeout_s)

    def _index_for(self, arrays: IndexArrays) -> BuiltIndex | None:
        """The built index to search ``arrays`` with; None: search exactly (too few items,
        no model, or the index for this model space is still being built)."""
        if arrays.space is None or arrays.written is None or len(arrays.ids) < self.exact_below:
            return None
        built = self.built
        if built is None or built.space is not arrays.space:
            self._start_build(arrays)
            built = self.built
            return built if built is not None and built.space is arrays.space else None
        self._rows_beside(arrays, built)
        if self._written_since > self.rebuild_after * built.index.ntotal:
            self._start_build(arrays)
        return built

    def _rows_beside(self, arrays: IndexArrays, built: BuiltIndex) -> np.ndarray:
        """Rows scored exactly beside ``built``: written after its snapshot, or newer than
        the model (computed once per arrays). Only the first kind counts towards a
        rebuild: a new index would not hold the second either."""
        cached = self._beside
        if cached is not None and cached[0] is arrays and cached[1] is built:
            return cached[2]
        assert arrays.written is not None
        since = arrays.written > built.write
        rows = np.flatnonzero(since | ~arrays.learned)
        self._beside, self._written_since = (arrays, built, rows), int(np.count_nonzero(since))
        return rows

    def _search(
        self,
        built: BuiltIndex,
        arrays: IndexArrays,
        query: np.ndarray,
        in_index: np.ndarray,
        k: int,
    ) -> np.ndarray:
        """The best ``k`` of the rows ``in_index`` allows: through the index, probing more
        lists the more the filter takes away, or exactly over a few allowed items."""
        allowed = int(np.count_nonzero(in_index))
        if allowed <= self.exact_allowed:
            rows = np.flatnonzero(in_index)
            exact: np.ndarray = rows[top_k(arrays.vectors[rows] @ query, k)]
            return exact
        share = allowed / max(built.index.ntotal, 1)
        probes = min(built.lists, math.ceil(self.probes / min(share, 1.0) ** 3))
        # faiss's bundled stubs describe its SWIG layer, not the numpy wrappers called here.
        selector = faiss.IDSelectorBitmap(np.packbits(in_index, bitorder="little"))  # type: ignore[call-arg,arg-type]
        params = faiss.SearchParametersIVF(sel=selector, nprobe=probes)  # type: ignore[call-arg]
        _, found = built.index.search(query[None].astype(np.float32), k, params=params)
        hits: np.ndarray = found[0][found[0] >= 0]
        return hits

    def _start_build(self, arrays: IndexArrays) -> None:
        if self._building is not None and self._building.is_alive():
            return

        def build() -> None:
            try:
                built = build_index(arrays)
            except Exception:
                log.exception("building the vector index failed; search stays exact")
                return
            self.built = built
            log.info(
                "vector index built: %d items, %d lists, %.1f s (user_encoder v%d)",
                built.index.ntotal, built.lists, built.seconds, built.space.version,
            )  # fmt: skip

        if self._background:
            self._building = threading.Thread(target=build, name="vector-index", daemon=True)
            self._building.start()
        else:
            build()
