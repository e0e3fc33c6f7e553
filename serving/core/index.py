"""The in-memory item index: content embeddings, item vectors, and blend signals.

Rebuilt from PostgreSQL at start-up, then kept current from this server's own
writes at once and other replicas' writes on a short refresh loop. Arrays are
replaced (never mutated in place) so a request always sees one consistent state.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import numpy as np

from serving.core import bfloat16
from serving.core.columns import GrowingColumns
from serving.core.domain import EventType, Item
from serving.core.itemspace import ItemSpace
from serving.core.newitems import reference_sample, unit_rows

# Stamps of item-vector writes (``IndexArrays.written``): one sequence for the process, so
# they only ever grow, across ``ItemIndex.reset`` too (an index built before stays stale).
_WRITES = itertools.count(1)


@dataclass(frozen=True)
class StoredItem:
    """An item as the catalogue holds it: with its content embedding and last write."""

    item: Item
    embedding: np.ndarray
    updated_at: datetime
    deleted: bool
    encoder: str = ""
    """Fingerprint of the content encoder that produced ``embedding`` ("" not recorded)."""


@dataclass(frozen=True)
class ItemStatsRow:
    """An item's engagement statistics as of ``updated_at``."""

    item_id: str
    popularity: float
    popularity_at: datetime
    updated_at: datetime
    impressions: int = 0
    clicks: int = 0


@dataclass(frozen=True)
class IndexArrays:
    ids: tuple[str, ...]
    content: np.ndarray
    """(N, dim) content embeddings of one content encoder as bfloat16 codes (half of
    float32's memory: a million 384-d items take 768 MB, not 1.5 GB); read them through
    ``content_of`` (rows) or ``content_float32`` (every row)."""
    vectors: np.ndarray  # (N, d) item vectors in the current model space; (N, 0) without one
    published: np.ndarray  # (N,) epoch seconds, NaN when unknown
    live: np.ndarray  # (N,) bool
    window: np.ndarray  # (N, 2) availability from / until, epoch seconds (-inf / +inf: open)
    learned: np.ndarray  # (N,) bool: has a learned embedding in the model space (False without)
    space: ItemSpace | None = None
    written: np.ndarray | None = None
    """(N,) int64: the index write that last set each row's vector (an index library keeps
    what it built and scores the rows written since beside it); None: unknown."""
    content_written: np.ndarray | None = None
    """(N,) int64: the same for each row's content embedding (a new model space rewrites
    every vector, no content)."""
    tokens: np.ndarray | None = None
    """(N,) int64: each row's user-encoder input token in ``space`` (0: its history
    position sends its content); None without a space. ``space`` keeps the tokens of the
    items the index does not hold only (``ItemSpace.beyond``)."""

    def content_of(self, positions: np.ndarray | Sequence[int]) -> np.ndarray:
        """The content embeddings of ``positions``, as float32."""
        return bfloat16.decode(self.content[np.asarray(positions, np.int64)])

    @cached_property
    def content_float32(self) -> np.ndarray:
        """Every content embedding as float32, made on first use: what an exact scan of
        the whole catalogue multiplies. An index library spares large catalogues this
        copy."""
        return bfloat16.decode(self.content)

    @cached_property
    def unlearned(self) -> np.ndarray:
        """Positions of the items placed by their text alone (newer than the model)."""
        if self.space is None:
            return np.zeros(0, np.int64)
        return np.flatnonzero(~self.learned)

    @cached_property
    def calibration_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """An evenly spread sample of the items with a learned embedding (positions) and
        their content part in the model space: what new items' scores are set against."""
        if self.space is None:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        sample = reference_sample(np.flatnonzero(self.learned))
        return sample, self.space.project(self.content_of(sample))

    @cached_property
    def spread_sample(self) -> np.ndarray:
        """An evenly spread sample of every item's position (all of them up to
        ``REFERENCE_SAMPLE``): what an approximate index standardises relevance against,
        where exact search has every item's score."""
        return reference_sample(np.arange(len(self.ids)))

    @cached_property
    def reference_unit_content(self) -> np.ndarray:
        """The calibration reference's content embeddings, unit-normalised."""
        return unit_rows(self.content_of(self.calibration_reference[0]))

    def available(self, now: float) -> np.ndarray:
        """Live items inside their availability window at ``now``."""
        return self.live & (self.window[:, 0] <= now) & (now < self.window[:, 1])


@dataclass(frozen=True)
class Placement:
    """Arrays placed in a model space, and the arrays they were computed from."""

    source: IndexArrays
    arrays: IndexArrays


def _window(item: Item) -> tuple[float, float]:
    start, end = item.available_from, item.available_until
    return (start.timestamp() if start else -math.inf, end.timestamp() if end else math.inf)


def _known(stamps: np.ndarray | None, size: int) -> np.ndarray:
    """Write stamps of ``size`` rows: zeros when unknown."""
    return stamps if stamps is not None else np.zeros(size, np.int64)


def _epoch(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else math.nan


class ItemIndex:
    """Every item the server can recommend, with popularity kept alongside."""

    def __init__(self, content_dim: int = 384, encoder: str = "") -> None:
        self._content_dim = content_dim
        self.encoder = encoder
        """Fingerprint of the content encoder whose vectors the index holds ("" any)."""
        self._position: dict[str, int] = {}
        # Only what ranking reads of an item beyond the arrays: its categories (one tuple
        # per distinct set, shared), not the whole Item (titles and attributes of a
        # million items are hundreds of MB the orchestrator never reads).
        self._categories: list[tuple[str, ...]] = []
        self._category_sets: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.space: ItemSpace | None = None
        # Item positions by category, built on first use after the categories changed.
        # Not keyed by the arrays: holding them would keep a replaced model space (a
        # million items' vectors) alive until the next category rule.
        self._by_category: dict[str, np.ndarray] | None = None
        self._columns = GrowingColumns()
        self.arrays = IndexArrays(
            ids=(),
            content=np.zeros((0, content_dim), bfloat16.CODE),
            vectors=np.zeros((0, 0), np.float32),
            published=np.zeros(0),
            live=np.zeros(0, bool),
            window=np.zeros((0, 2)),
            learned=np.zeros(0, bool),
            written=np.zeros(0, np.int64),
            content_written=np.zeros(0, np.int64),
        )
        self.popularity = np.zeros(0)  # decayed engagement at popularity_at
        self.popularity_at = np.zeros(0)  # epoch seconds
        self.impressions = np.zeros(0)
        self.clicks = np.zeros(0)

    @property
    def content_dim(self) -> int:
        return self._content_dim

    def reset(self, content_dim: int, encoder: str) -> None:
        """Empty the index for another content encoder's vectors (then upsert them)."""
        self.__init__(content_dim, encoder)  # type: ignore[misc]

    def reserve(self, items: int) -> None:
        """Make room for ``items`` items before loading them, so the load grows every
        column without copying it (rooms never written take no memory)."""
        self._columns.reserve(items)

    def holds(self, entry: StoredItem) -> bool:
        """Whether ``entry``'s vector is of this index's encoder (and width): other
        vectors are kept out of ranking until the catalogue is re-embedded."""
        if entry.embedding.shape != (self._content_dim,):
            return False
        return not (self.encoder and entry.encoder and entry.encoder != self.encoder)

    def __len__(self) -> int:
        return len(self._categories)

    def in_categories(self, categories: Iterable[str]) -> np.ndarray:
        """Mask of the items that carry any of ``categories``."""
        if self._by_category is None:
            members: dict[str, list[int]] = {}
            for position, carried in enumerate(self._categories):
                for category in carried:
                    members.setdefault(category, []).append(position)
            self._by_category = {c: np.array(p) for c, p in members.items()}
        mask = np.zeros(len(self._categories), bool)
        for category in categories:
            positions = self._by_category.get(category)
            if positions is not None:
                mask[positions] = True
        return mask

    def primary_category(self, position: int) -> str:
        """The first category of the item at ``position`` ("" when it has none)."""
        categories = self._categories[position]
        return categories[0] if categories else ""

    @property
    def positions(self) -> dict[str, int]:
        """Row of each item id in the arrays (read-only by convention)."""
        return self._position

    def position(self, item_id: str) -> int | None:
        return self._position.get(item_id)

    def encoder_inputs(
        self, space: ItemSpace, history: Sequence[tuple[str, EventType]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The user encoder's inputs for ``history`` (oldest first) in ``space``: tokens and
        event types left-padded to the model's length, content embeddings (one row per
        position, or with ``space.takes_tokens`` only those of the positions whose token
        is 0, in order); and the padding's length."""
        arrays, length = self.arrays, space.max_len
        history = history[-length:]
        pad = length - len(history)
        tokens = np.zeros(length, np.int64)
        types = np.zeros(length, np.int64)
        tokens[pad:] = self._input_tokens(arrays, space, [item_id for item_id, _ in history])
        types[pad:] = [int(event_type) for _, event_type in history]
        sends = np.ones(length, bool) if not space.takes_tokens else (tokens == 0) & (types > 0)
        content = np.zeros((int(sends.sum()), arrays.content.shape[1]), np.float32)
        rows, positions = [], []
        for row, offset in enumerate(np.flatnonzero(sends)):
            position = self.position(history[offset - pad][0]) if offset >= pad else None
            if position is not None and position < len(arrays.ids):
                rows.append(row)
                positions.append(position)
        content[rows] = arrays.content_of(positions)
        return tokens, types, content, pad

    def _input_tokens(
        self, arrays: IndexArrays, space: ItemSpace, item_ids: Sequence[str]
    ) -> np.ndarray:
        """The user encoder's tokens for ``item_ids`` in ``space``: the rows' own when the
        arrays are placed in it, the space's for the items they do not hold."""
        if arrays.space is not space or arrays.tokens is None:
            return space.input_tokens(item_ids)
        size = len(arrays.ids)
        positions = np.array([self._position.get(i, size) for i in item_ids], np.int64)
        held = positions < size
        tokens = np.zeros(len(item_ids), np.int64)
        tokens[held] = arrays.tokens[positions[held]]
        if not held.all():
            others = [item_id for item_id, h in zip(item_ids, held, strict=True) if not h]
            tokens[~held] = space.input_tokens(others)
        return tokens

    def upsert(self, stored: Iterable[StoredItem]) -> None:
        """Add or replace items (soft-deleted ones stay, marked not live)."""
        latest = {entry.item.item_id: entry for entry in stored}  # last write wins
        if not latest:
            return
        held = [self.holds(entry) for entry in latest.values()]
        old = self.arrays
        added: list[str] = []
        for item_id, entry in latest.items():
            categories = self._category_sets.setdefault(
                entry.item.categories, entry.item.categories
            )
            position = self._position.get(item_id)
            if position is None:
                self._position[item_id] = len(self._categories)
                self._categories.append(categories)
                added.append(item_id)
            else:
                self._categories[position] = categories
        self._by_category = None
        size, grow = len(self._categories), len(added)
        rows = np.fromiter((self._position[i] for i in latest), dtype=np.int64, count=len(latest))
        # Rows only added go into spare rows no snapshot covers; a write to an item a
        # snapshot holds copies the columns, which requests may be reading.
        copy = bool(grow < len(rows))

        def extended(name: str, column: np.ndarray, fill: object = 0) -> np.ndarray:
            return self._columns.extended(name, column, grow, fill, copy)

        content = extended("content", old.content)
        published = extended("published", old.published, math.nan)
        live = extended("live", old.live, False)
        window = extended("window", old.window)
        zero = np.zeros(self._content_dim, np.float32)
        entries = list(latest.values())
        for start in range(0, len(entries), bfloat16.CHUNK_ROWS):  # no float32 copy of them all
            part = zip(entries[start : start + bfloat16.CHUNK_ROWS], held[start:], strict=False)
            embeddings = np.stack([entry.embedding if h else zero for entry, h in part])
            content[rows[start : start + bfloat16.CHUNK_ROWS]] = bfloat16.encode(embeddings)
        published[rows] = [_epoch(entry.item.published_at) for entry in entries]
        live[rows] = [h and not e.deleted for e, h in zip(entries, held, strict=True)]
        window[rows] = [_window(entry.item) for entry in entries]
        ids = old.ids + tuple(added)
        learned = extended("learned", old.learned, False)
        stamp = next(_WRITES)
        written = extended("written", _known(old.written, len(old.ids)))
        written[rows] = stamp
        content_written = extended("content_written", _known(old.content_written, len(old.ids)))
        content_written[rows] = stamp
        tokens: np.ndarray | None = None
        if self.space is not None:
            # Only the rows written now need new vectors, and of those not a learned item
            # of a version that holds its items' vectors: it stays where training put it
            # (its space, ``ItemSpace.beyond``, no longer holds that vector).
            vectors = extended("vectors", old.vectors)
            placed = np.zeros(len(rows), bool)
            if self.space.takes_tokens:
                existing = rows < len(old.ids)
                placed[existing] = old.learned[rows[existing]]
            todo = rows[~placed]
            written_ids = [item_id for item_id, p in zip(latest, placed, strict=True) if not p]
            vectors[todo], learned[todo] = self.space.vectors(
                written_ids, lambda chunk: bfloat16.decode(content[todo[chunk]])
            )
            assert old.tokens is not None  # placed in the space
            tokens = extended("tokens", old.tokens)
            tokens[todo] = self.space.input_tokens(written_ids)
        else:
            vectors = np.zeros((size, 0), np.float32)
        # Counts grow here, never change: only added rows, in place.
        self.popularity = self._columns.extended("popularity", self.popularity, grow)
        self.popularity_at = self._columns.extended("popularity_at", self.popularity_at, grow)
        self.impressions = self._columns.extended("impressions", self.impressions, grow)
        self.clicks = self._columns.extended("clicks", self.clicks, grow)
        self.arrays = IndexArrays(
            ids,
            content,
            vectors,
            published,
            live,
            window,
            learned,
            self.space,
            written,
            content_written,
            tokens,
        )

    def drop_space(self) -> None:
        """Rank without a model (the fallback) until a space is set again."""
        self.space = None
        old = self.arrays
        self.arrays = IndexArrays(
            old.ids,
            old.content,
            np.zeros((len(old.ids), 0), np.float32),
            old.published,
            old.live,
            old.window,
            np.zeros(len(old.ids), bool),
            written=self._new_write(old),
            content_written=old.content_written,
        )

    def placed_in(self, space: ItemSpace) -> Placement:
        """The index's arrays in a (new) model version's space: every item's vector,
        seconds of work at a million items. It reads one snapshot and changes nothing, so
        a worker thread can do it while requests are served (then ``set_space``)."""
        old = self.arrays
        vectors, learned = space.vectors(old.ids, old.content_of)
        placed = IndexArrays(
            old.ids,
            old.content,
            vectors,
            old.published,
            old.live,
            old.window,
            learned,
            space.beyond(list(itertools.compress(old.ids, learned))),
            self._new_write(old),
            old.content_written,
            space.input_tokens(old.ids),
        )
        return Placement(old, placed)

    def set_space(self, space: ItemSpace, placement: Placement | None = None) -> None:
        """Place every item in a (new) model version's space: with ``placement`` (from
        ``placed_in``) unless the index changed since it was made."""
        if placement is None or placement.source is not self.arrays:
            placement = self.placed_in(space)
        self.space = placement.arrays.space
        self.arrays = placement.arrays

    def _new_write(self, old: IndexArrays) -> np.ndarray:
        """Every row's vector written anew (another space, or none)."""
        return np.full(len(old.ids), next(_WRITES), np.int64)

    def count_impressions(self, positions: np.ndarray) -> None:
        """This replica just showed these items (in place: counts only ever grow)."""
        np.add.at(self.impressions, positions, 1.0)

    def update_stats(self, rows: Iterable[ItemStatsRow]) -> None:
        popularity = self.popularity.copy()
        popularity_at = self.popularity_at.copy()
        impressions, clicks = self.impressions.copy(), self.clicks.copy()
        for row in rows:
            position = self._position.get(row.item_id)
            if position is not None:
                popularity[position] = row.popularity
                popularity_at[position] = row.popularity_at.timestamp()
                impressions[position] = row.impressions
                clicks[position] = row.clicks
        self.popularity, self.popularity_at = popularity, popularity_at
        self.impressions, self.clicks = impressions, clicks
