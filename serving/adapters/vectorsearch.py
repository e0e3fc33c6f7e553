"""Retrieval through FAISS: inverted-file indexes over the item vectors of the model's
space and over the content embeddings (free-text queries, "more like this"), with exact
search beside them for whatever an index does not hold.

Below ``exact_below`` items one matrix product is faster, and search is exact. Above, an
IVF index (inner product, chosen by ``benchmarks.ann``; 8-bit scalar-quantised codes
for the item vectors, 4-bit for the 384-d content, twice as many candidates asked of it;
the candidates it finds are scored exactly) is built in a background thread from one snapshot
of the arrays, once per model space (content: per content width); until it is ready,
search stays exact. A built index is never changed: the rows written after its
snapshot (UpsertItems, new content) and the items newer than the model (set on the
known items' scale, ``newitems``) are scored exactly beside it, and their stale entries
in it are filtered out. So a new item is recommendable on the next call, and when those
rows grow past ``rebuild_after`` a new index is built and swapped in: serving never
pauses for it (nor rebuilds more often than ``REBUILD_COOLDOWN`` allows).

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
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import faiss
import numpy as np

from serving.adapters.memory import release_freed_memory, resident_mib
from serving.core import bfloat16
from serving.core.index import IndexArrays
from serving.core.itemspace import ItemSpace
from serving.core.newitems import NewItems, user_scores
from serving.core.ranking.retrieve import Retrieval, best_of, by_content, top_k

log = logging.getLogger(__name__)

EXACT_BELOW = 50_000
"""Catalogues smaller than this are searched exactly (benchmarks/RESULTS.md)."""
PROBES = 32
"""Inverted lists probed per query when nothing is filtered out."""
EXACT_ALLOWED = 20_000
"""Filters that allow at most this many items are searched exactly over those."""
TRAINING_PER_LIST = 40
"""k-means sample per list (FAISS warns below 39)."""
REBUILD_COOLDOWN = 10.0
"""After a build, the next waits at least this many times as long as it took: rebuilding
never takes more than about a tenth of a core, however fast rows arrive (a bulk load of a
million items otherwise rebuilt the content index some 60 times, growing each time)."""


@dataclass(frozen=True)
class Kind:
    """One kind of vector an index is kept over."""

    name: str
    key: Callable[[IndexArrays], object]
    """What an index of this kind is built for (None: nothing to build): a new key, a new
    index."""
    held: Callable[[IndexArrays], np.ndarray]
    """Mask of the rows an index holds (the others are always scored beside it)."""
    stamps: Callable[[IndexArrays], np.ndarray | None]
    """The write that last set each row's vector (``IndexArrays.written``)."""
    rows: Callable[[IndexArrays, np.ndarray], np.ndarray]
    """The vectors of the rows at some positions, as float32."""
    make: Callable[[int, int], faiss.IndexIVF]
    """(width, lists) -> an empty index."""
    lists_per_root: float
    """Inverted lists per square root of the rows held."""
    oversample: int = 1
    """Candidates asked of the index per place in the list: the codes' scores are
    approximate, the exact scores of the candidates decide."""


def _ivf_sq8(width: int, lists: int) -> faiss.IndexIVF:
    return _ivf_sq(width, lists, faiss.ScalarQuantizer.QT_8bit)


def _ivf_sq4(width: int, lists: int) -> faiss.IndexIVF:
    return _ivf_sq(width, lists, faiss.ScalarQuantizer.QT_4bit)


def _ivf_sq(width: int, lists: int, bits: int) -> faiss.IndexIVF:
    quantizer = faiss.IndexFlatIP(width)
    return faiss.IndexIVFScalarQuantizer(quantizer, width, lists, bits, faiss.METRIC_INNER_PRODUCT)


ITEM_VECTORS = Kind(
    "item vectors",
    key=lambda arrays: arrays.space,
    held=lambda arrays: arrays.learned,
    stamps=lambda arrays: arrays.written,
    rows=lambda arrays, positions: arrays.vectors[positions],
    make=_ivf_sq8,
    lists_per_root=2,
)
"""The model space's item vectors, of the items with a learned embedding (the others are
set on the known items' scale per request, ``newitems``)."""
CONTENT = Kind(
    "content",
    key=lambda arrays: arrays.content.shape[1],
    held=lambda arrays: np.ones(len(arrays.ids), bool),
    stamps=lambda arrays: arrays.content_written,
    rows=lambda arrays, positions: arrays.content_of(positions),
    make=_ivf_sq4,
    lists_per_root=1,
    oversample=2,
)
"""Every item's content embedding (unit length: the inner product is the cosine). Half
the item vectors' lists: assigning 384-d rows to lists is most of a build (1,000,000
items: 146 s with 2,000 lists on one thread, 70 s with 1,000; benchmarks/RESULTS.md)."""


def _version_of(key: object) -> str:
    """What the build log names an index's key by: a model space by its version."""
    return f", user_encoder v{key.version}" if isinstance(key, ItemSpace) else ""


def _same(key: object, other: object) -> bool:
    """A model space is the same object (its arrays make == ambiguous); a width, equal."""
    return key is other or (isinstance(key, int) and key == other)


@dataclass(frozen=True)
class BuiltIndex:
    """An IVF index over one snapshot's rows of one kind (ids are row positions)."""

    key: object
    """What it was built for (``Kind.key``): the model space, or the content width."""
    write: int
    """The latest write the snapshot holds (rows written later are scored beside)."""
    index: faiss.IndexIVF
    lists: int
    seconds: float
    finished: float = 0.0
    """``time.monotonic()`` when the build ended."""


def build_index(arrays: IndexArrays, kind: Kind = ITEM_VECTORS) -> BuiltIndex:
    """The IVF index over the rows of ``arrays`` that ``kind`` holds (``lists_per_root *
    sqrt(n)`` lists, trained on an evenly spread sample)."""
    started = time.perf_counter()
    stamps = kind.stamps(arrays)
    assert stamps is not None
    rows = np.flatnonzero(kind.held(arrays))
    lists = max(1, int(kind.lists_per_root * math.sqrt(len(rows))))
    index = kind.make(kind.rows(arrays, rows[:0]).shape[1], lists)
    index.cp.niter = 10
    index.train(kind.rows(arrays, rows[:: max(1, len(rows) // (lists * TRAINING_PER_LIST))]))
    # A chunk at a time: compact content is never made float32 for every row at once.
    for start in range(0, len(rows), bfloat16.CHUNK_ROWS):
        chunk = rows[start : start + bfloat16.CHUNK_ROWS]
        index.add_with_ids(kind.rows(arrays, chunk), chunk.astype(np.int64))
    write = int(stamps.max(initial=0))
    seconds = time.perf_counter() - started
    return BuiltIndex(kind.key(arrays), write, index, lists, seconds, time.monotonic())


class KeptIndex:
    """The index of one kind kept current for the arrays it is asked about: built in the
    background for a new key, rebuilt when the rows written since exceed a share of it
    (``rebuild_after``) and the last build is ``rebuild_cooldown`` times its own duration
    past."""

    def __init__(
        self,
        kind: Kind,
        exact_below: int,
        rebuild_after: float,
        background: bool,
        rebuild_cooldown: float = REBUILD_COOLDOWN,
    ):
        self.kind = kind
        self.exact_below = exact_below
        self.rebuild_after = rebuild_after
        self.rebuild_cooldown = rebuild_cooldown
        self._background = background
        self.built: BuiltIndex | None = None
        self._building: threading.Thread | None = None
        # Weakly: arrays a request no longer ranks must not outlive it here (after a new
        # version, the old space's vectors would, until the next request of this kind).
        self._beside: tuple[weakref.ref[IndexArrays], BuiltIndex, np.ndarray] | None = None
        self._written_since = 0  # of those rows, the ones written after the build
        self._latest: IndexArrays | None = None
        self._waiting: threading.Timer | None = None  # a rebuild when the cool-down ends
        self._starting = threading.Lock()  # requests and that timer start builds

    def for_arrays(self, arrays: IndexArrays) -> BuiltIndex | None:
        """The built index to search ``arrays`` with; None: search exactly (too few items,
        nothing to build for, or its index still being built)."""
        key = self.kind.key(arrays)
        if key is None or self.kind.stamps(arrays) is None or len(arrays.ids) < self.exact_below:
            return None
        built = self.built
        if built is None or not _same(key, built.key):
            self._start_build(arrays)
            built = self.built
            return built if built is not None and _same(key, built.key) else None
        self.beside(arrays, built)
        if self._written_since > self.rebuild_after * built.index.ntotal:
            cooled_in = built.finished + self.rebuild_cooldown * built.seconds - time.monotonic()
            if cooled_in <= 0:
                self._start_build(arrays)
            else:
                self._rebuild_later(arrays, cooled_in)
        return built

    def _rebuild_later(self, arrays: IndexArrays, delay_s: float) -> None:
        """Rebuild for the latest arrays asked about once the cool-down ends, whether or
        not a request asks again then (after a bulk load nothing changes any more, and
        the rows beside the index would stay exact until the next write)."""
        self._latest = arrays
        if not self._background or self._waiting is not None:
            return

        def rebuild() -> None:
            self._waiting = None
            latest, self._latest = self._latest, None
            if latest is not None:
                self.for_arrays(latest)  # decides again: a request may have rebuilt

        self._waiting = threading.Timer(delay_s, rebuild)
        self._waiting.daemon = True
        self._waiting.start()

    def beside(self, arrays: IndexArrays, built: BuiltIndex) -> np.ndarray:
        """Rows scored exactly beside ``built``: written after its snapshot, or not of the
        kind it holds (computed once per arrays). Only rows of both kinds count towards a
        rebuild: a new index would not hold the others (items newer than the model) either."""
        cached = self._beside
        if cached is not None and cached[0]() is arrays and cached[1] is built:
            return cached[2]
        stamps = self.kind.stamps(arrays)
        assert stamps is not None
        since, held = stamps > built.write, self.kind.held(arrays)
        rows = np.flatnonzero(since | ~held)
        self._beside = (weakref.ref(arrays), built, rows)
        self._written_since = int(np.count_nonzero(since & held))
        return rows

    def wait(self, timeout_s: float | None = None) -> None:
        building = self._building
        if building is not None:
            building.join(timeout_s)

    def _start_build(self, arrays: IndexArrays) -> None:
        with self._starting:
            if self._building is not None and self._building.is_alive():
                return
            self._build(arrays)

    def _build(self, arrays: IndexArrays) -> None:
        kind = self.kind

        def build() -> None:
            try:
                built = build_index(arrays, kind)
            except Exception:
                log.exception("building the %s index failed; search stays exact", kind.name)
                return
            self.built = built
            release_freed_memory()  # the index this one replaces, and the build's buffers
            log.info(
                "vector index built (%s): %d items, %d lists, %.1f s%s; process RSS %.0f MiB",
                kind.name, built.index.ntotal, built.lists, built.seconds,
                _version_of(built.key), resident_mib(),
            )  # fmt: skip

        if self._background:
            self._building = threading.Thread(target=build, name=f"{kind.name} index", daemon=True)
            self._building.start()
        else:
            build()


SCAN_SLICE = 65_536
"""Rows of content decoded at a time by an exact scan (a million rows at once: 1.5 GB)."""


def _most_similar(arrays: IndexArrays, rows: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` of ``rows`` whose content is closest to ``query`` (inner product), exactly,
    decoding a slice of rows at a time."""
    best = [
        part[top_k(arrays.content_of(part) @ query, k)]
        for part in np.array_split(rows, max(1, math.ceil(len(rows) / SCAN_SLICE)))
    ]
    merged = np.concatenate(best)
    closest: np.ndarray = merged[top_k(arrays.content_of(merged) @ query, k)]
    return closest


class FaissRetriever:
    """``Retriever`` over FAISS IVF indexes, exact below ``exact_below`` items."""

    def __init__(
        self,
        exact_below: int = EXACT_BELOW,
        probes: int = PROBES,
        exact_allowed: int = EXACT_ALLOWED,
        rebuild_after: float = 0.05,
        background: bool = True,
        rebuild_cooldown: float = REBUILD_COOLDOWN,
    ) -> None:
        self.exact_below = exact_below
        self.probes = probes
        self.exact_allowed = exact_allowed
        kept = (exact_below, rebuild_after, background, rebuild_cooldown)
        self.items = KeptIndex(ITEM_VECTORS, *kept)
        self.content = KeptIndex(CONTENT, *kept)
        faiss.omp_set_num_threads(1)  # one query per request; processes use the cores

    @property
    def built(self) -> BuiltIndex | None:
        """The item-vector index built last (None: none yet)."""
        return self.items.built

    def retrieve(
        self,
        arrays: IndexArrays,
        query: np.ndarray,
        allowed: np.ndarray,
        k: int,
        new_items: NewItems | None = None,
    ) -> Retrieval:
        new_items = new_items or NewItems()
        built = self.items.for_arrays(arrays)
        if built is None:
            return best_of(user_scores(arrays, query, new_items), allowed, k)

        def score(positions: np.ndarray) -> np.ndarray:
            return user_scores(arrays, query, new_items, np.asarray(positions, np.int64))

        def contenders(beside: np.ndarray) -> np.ndarray:
            return self._contenders(arrays, beside, query, new_items, k)

        return self._through(self.items, built, arrays, query, allowed, k, score, contenders)

    def by_content(
        self, arrays: IndexArrays, query: np.ndarray, allowed: np.ndarray, k: int
    ) -> Retrieval:
        built = self.content.for_arrays(arrays)
        if built is None:
            return by_content(arrays, query, allowed, k)

        def score(positions: np.ndarray) -> np.ndarray:
            similarity: np.ndarray = arrays.content_of(positions) @ query
            return similarity

        return self._through(self.content, built, arrays, query, allowed, k, score)

    def prepare(self, arrays: IndexArrays) -> None:
        """Start building the indexes for ``arrays`` (when it is large enough) in the
        background, before the first request asks for them."""
        self.items.for_arrays(arrays)
        self.content.for_arrays(arrays)

    def wait_until_built(self, timeout_s: float | None = None) -> None:
        """Block until background builds in progress are done (tests, benchmarks)."""
        self.items.wait(timeout_s)
        self.content.wait(timeout_s)

    def _contenders(
        self,
        arrays: IndexArrays,
        beside: np.ndarray,
        query: np.ndarray,
        new_items: NewItems,
        k: int,
    ) -> np.ndarray:
        """Of the allowed rows beside the item index, the ones that can make the top ``k``.

        After a catalogue is loaded far past what the model knows, nearly every row is an
        item newer than the model, and setting each on the known items' scale reads its
        content: 1.5 s per request for a million items. A new item's calibrated score grows
        with the larger of its two pieces of evidence (``newitems``): its content part's
        score and its text's similarity to the user's profile. So the new items that can
        make the top ``k`` are among the ``k`` best by either: the content part over the
        new rows' vectors (a product of the model's width), the similarity through the
        content index (until it is built, a scan of the new rows' content a slice at a
        time). Learned rows beside it (written since the build) all stay."""
        if len(beside) <= self.exact_allowed:
            return beside
        new = beside[~arrays.learned[beside]]
        # The whole product, then the new rows: gathering their vectors first copies them.
        content_part = (arrays.vectors @ query)[new]
        picks = [beside[arrays.learned[beside]], new[top_k(content_part, k)]]
        profile = new_items.profile
        if profile is not None:
            if self.content.for_arrays(arrays) is None:
                picks.append(_most_similar(arrays, new, profile, k))
            else:
                among = np.zeros(len(arrays.ids), bool)
                among[new] = True
                picks.append(self.by_content(arrays, profile, among, k).candidates)
        kept: np.ndarray = np.unique(np.concatenate(picks))
        return kept

    def _through(
        self,
        kept: KeptIndex,
        built: BuiltIndex,
        arrays: IndexArrays,
        query: np.ndarray,
        allowed: np.ndarray,
        k: int,
        score: Callable[[np.ndarray], np.ndarray],
        contenders: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Retrieval:
        """The ``k`` best allowed rows by ``score``: the index's candidates and the rows
        beside it (those of them that can make the list, by ``contenders``), scored
        exactly. Relevance is standardised as exact search does it, against every item's
        score (new items' calibrated), or an even sample of them."""
        beside = kept.beside(arrays, built)
        in_index = allowed.copy()
        in_index[beside] = False
        found = self._search(
            built,
            lambda rows: kept.kind.rows(arrays, rows),
            query,
            in_index,
            k * kept.kind.oversample,
        )
        beside = beside[allowed[beside]]
        if contenders is not None:
            beside = contenders(beside)
        candidates = np.union1d(found, beside)
        scores = score(candidates)
        return Retrieval(candidates[top_k(scores, k)], score, score(arrays.spread_sample))

    def _search(
        self,
        built: BuiltIndex,
        vectors_of: Callable[[np.ndarray], np.ndarray],
        query: np.ndarray,
        in_index: np.ndarray,
        k: int,
    ) -> np.ndarray:
        """The best ``k`` of the rows ``in_index`` allows: through the index, probing more
        lists the more the filter takes away, or exactly over a few allowed items."""
        allowed = int(np.count_nonzero(in_index))
        if allowed <= self.exact_allowed:
            rows = np.flatnonzero(in_index)
            exact: np.ndarray = rows[top_k(vectors_of(rows) @ query, k)]
            return exact
        share = allowed / max(built.index.ntotal, 1)
        probes = min(built.lists, math.ceil(self.probes / min(share, 1.0) ** 3))
        # faiss's bundled stubs describe its SWIG layer, not the numpy wrappers called here.
        selector = faiss.IDSelectorBitmap(np.packbits(in_index, bitorder="little"))  # type: ignore[call-arg,arg-type]
        params = faiss.SearchParametersIVF(sel=selector, nprobe=probes)  # type: ignore[call-arg]
        _, found = built.index.search(query[None].astype(np.float32), k, params=params)
        hits: np.ndarray = found[0][found[0] >= 0]
        return hits
