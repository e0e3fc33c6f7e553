"""Synthetic, clustered item and user vectors for catalogues larger than MiniLM can embed
here (benchmarks say so wherever they use them).

Items sit around topic centres, as learned embeddings do, with norms that vary as they
do between popular and obscure items; a user vector mixes a few topics. Exact and
approximate search then face the structure real embeddings have, not uniform noise (on
which every index looks worse than it is, and exact top lists are near ties).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from serving.core.domain import Item
from serving.core.index import ItemIndex, StoredItem
from serving.core.itemspace import ItemSpace

CATEGORIES = 20


@dataclass(frozen=True)
class SyntheticCatalogue:
    vectors: np.ndarray
    """(N, dim) float32 item vectors."""
    topics: np.ndarray
    """(N,) topic of each item."""
    centres: np.ndarray
    """(topics, dim) topic centres."""

    @property
    def categories(self) -> np.ndarray:
        """(N,) one of ``CATEGORIES`` categories per item (topics grouped)."""
        return self.topics % CATEGORIES

    def users(self, count: int, rng: np.random.Generator, topics: int = 3) -> np.ndarray:
        """(count, dim) user vectors: a weighted mix of ``topics`` topic centres and noise."""
        picked = rng.integers(0, len(self.centres), (count, topics))
        weights = rng.dirichlet(np.ones(topics), count)
        mixed = np.einsum("ut,utd->ud", weights, self.centres[picked])
        noise = 0.3 * rng.standard_normal(mixed.shape) / np.sqrt(mixed.shape[1])
        users: np.ndarray = (mixed + noise).astype(np.float32)
        return users


def synthetic_catalogue(items: int, dim: int, rng: np.random.Generator) -> SyntheticCatalogue:
    """``items`` vectors of width ``dim`` around ``max(20, items // 500)`` topic centres."""
    count = max(CATEGORIES, items // 500)
    centres = rng.standard_normal((count, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    topics = rng.integers(0, count, items)
    spread = rng.standard_normal((items, dim)).astype(np.float32) * (0.6 / np.sqrt(dim))
    scale = rng.lognormal(0.0, 0.2, (items, 1)).astype(np.float32)
    vectors = ((centres[topics] + spread) * scale).astype(np.float32)
    return SyntheticCatalogue(vectors, topics, centres)


def synthetic_index(
    catalogue: SyntheticCatalogue,
    content_dim: int,
    rng: np.random.Generator,
    learned: int | None = None,
    content: np.ndarray | None = None,
) -> ItemIndex:
    """An ``ItemIndex`` of the catalogue's items in a model space whose learned embeddings
    are the catalogue's vectors (the first ``learned`` items; the rest newer than the model),
    with ``content`` as their (unit) content embeddings, random ones by default (the
    projection is zero: the vectors are the catalogue's). Items are ``item-<n>`` in
    category ``c<category>``."""
    n, dim = catalogue.vectors.shape
    learned = n if learned is None else learned
    ids = [f"item-{i}" for i in range(n)]
    if content is None:
        content = rng.standard_normal((n, content_dim)).astype(np.float32)
        content /= np.linalg.norm(content, axis=1, keepdims=True)
    space = ItemSpace(
        version=1,
        max_len=50,
        vocabulary=tuple(ids[:learned]),
        item_embeddings=catalogue.vectors[:learned],
        projection_weight=np.zeros((dim, content_dim), np.float32),
        projection_bias=np.zeros(dim, np.float32),
    )
    index = ItemIndex(content_dim)
    index.set_space(space)
    now = datetime.now(UTC)
    index.upsert(
        StoredItem(Item(item_id, item_id, categories=(f"c{category}",)), row, now, False)
        for item_id, category, row in zip(ids, catalogue.categories, content, strict=True)
    )
    return index
