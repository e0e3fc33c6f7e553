"""The in-memory item index: content embeddings, item vectors, and blend signals.

Rebuilt from PostgreSQL at start-up, then kept current from this server's own
writes at once and other replicas' writes on a short refresh loop. Arrays are
replaced (never mutated in place) so a request always sees one consistent state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from serving.domain import Item
from serving.store.artifacts import ItemSpace
from serving.store.items import ItemStatsRow, StoredItem


@dataclass(frozen=True)
class IndexArrays:
    ids: tuple[str, ...]
    content: np.ndarray  # (N, 384) normalised content embeddings
    vectors: np.ndarray  # (N, d) item vectors in the current model space; (N, 0) without one
    published: np.ndarray  # (N,) epoch seconds, NaN when unknown
    live: np.ndarray  # (N,) bool
    categories: tuple[tuple[str, ...], ...]


def _epoch(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else math.nan


class ItemIndex:
    """Every item the server can recommend, with popularity kept alongside."""

    def __init__(self, content_dim: int = 384) -> None:
        self._content_dim = content_dim
        self._position: dict[str, int] = {}
        self._items: list[Item] = []
        self.space: ItemSpace | None = None
        self.arrays = IndexArrays(
            ids=(),
            content=np.zeros((0, content_dim), np.float32),
            vectors=np.zeros((0, 0), np.float32),
            published=np.zeros(0),
            live=np.zeros(0, bool),
            categories=(),
        )
        self.popularity = np.zeros(0)  # decayed engagement at popularity_at
        self.popularity_at = np.zeros(0)  # epoch seconds

    def __len__(self) -> int:
        return len(self._items)

    @property
    def positions(self) -> dict[str, int]:
        """Row of each item id in the arrays (read-only by convention)."""
        return self._position

    def position(self, item_id: str) -> int | None:
        return self._position.get(item_id)

    def item(self, item_id: str) -> Item | None:
        position = self._position.get(item_id)
        return None if position is None else self._items[position]

    def upsert(self, stored: Iterable[StoredItem]) -> None:
        """Add or replace items (soft-deleted ones stay, marked not live)."""
        stored = list(stored)
        if not stored:
            return
        old = self.arrays
        content = old.content.copy()
        published = old.published.copy()
        live = old.live.copy()
        categories = list(old.categories)
        new_rows: list[StoredItem] = []
        for entry in stored:
            position = self._position.get(entry.item.item_id)
            if position is None:
                new_rows.append(entry)
                continue
            self._items[position] = entry.item
            content[position] = entry.embedding
            published[position] = _epoch(entry.item.published_at)
            live[position] = not entry.deleted
            categories[position] = entry.item.categories
        for entry in new_rows:
            self._position[entry.item.item_id] = len(self._items)
            self._items.append(entry.item)
        if new_rows:
            content = np.concatenate([content, np.stack([e.embedding for e in new_rows])])
            published = np.concatenate([published, [_epoch(e.item.published_at) for e in new_rows]])
            live = np.concatenate([live, [not e.deleted for e in new_rows]])
            categories.extend(e.item.categories for e in new_rows)
            grow = len(new_rows)
            self.popularity = np.concatenate([self.popularity, np.zeros(grow)])
            self.popularity_at = np.concatenate([self.popularity_at, np.zeros(grow)])
        ids = tuple(item.item_id for item in self._items)
        self.arrays = IndexArrays(
            ids,
            content.astype(np.float32),
            self._vectors(ids, content),
            published,
            live,
            tuple(categories),
        )

    def set_space(self, space: ItemSpace) -> None:
        """Place every item in a (new) model version's space."""
        self.space = space
        old = self.arrays
        self.arrays = IndexArrays(
            old.ids,
            old.content,
            self._vectors(old.ids, old.content),
            old.published,
            old.live,
            old.categories,
        )

    def _vectors(self, ids: Sequence[str], content: np.ndarray) -> np.ndarray:
        if self.space is None:
            return np.zeros((len(ids), 0), np.float32)
        return self.space.vectors(list(ids), content)

    def update_stats(self, rows: Iterable[ItemStatsRow]) -> None:
        popularity = self.popularity.copy()
        popularity_at = self.popularity_at.copy()
        for row in rows:
            position = self._position.get(row.item_id)
            if position is not None:
                popularity[position] = row.popularity
                popularity_at[position] = row.popularity_at.timestamp()
        self.popularity, self.popularity_at = popularity, popularity_at
