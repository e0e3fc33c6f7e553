"""The retrieval stage: the candidate pool, the best-scored allowed items.

Retrieval sits behind ``Retriever`` so an index library (approximate nearest neighbours)
can replace the exact matrix product; without a user vector the pool comes from the
popularity/freshness prior instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from serving.core.index import IndexArrays
from serving.core.newitems import NewItems, user_scores
from serving.core.ranking.signals import relevance_signal


@dataclass(frozen=True)
class Retrieval:
    """A candidate pool, and how to score any item against the same query."""

    candidates: np.ndarray
    """Catalogue positions, best first (may include disallowed ones when fewer are allowed
    than asked for: the filter stage drops them)."""
    scores: Callable[[np.ndarray], np.ndarray] | None
    """Inner-product scores of any positions; None when retrieved without a model."""
    reference: np.ndarray
    """Scores the relevance signal is standardised against (the whole catalogue's for the
    exact matrix product, a sample's for an approximate index)."""

    def relevance(self, positions: np.ndarray) -> np.ndarray:
        """The relevance signal in (0, 1) of ``positions`` (zeros without a model)."""
        if self.scores is None:
            return np.zeros(len(positions))
        return relevance_signal(self.scores(positions), self.reference)


class Retriever(Protocol):
    """Finds the ``k`` allowed items with the highest inner product with ``query``, a
    user vector; items newer than the model scored as ``newitems`` sets them, with
    ``new_items`` (default: confidence 1, no profile).

    ``arrays`` are replaced, never mutated, when the catalogue changes: an index library
    can key its built structure on their identity."""

    def retrieve(
        self,
        arrays: IndexArrays,
        query: np.ndarray,
        allowed: np.ndarray,
        k: int,
        new_items: NewItems | None = None,
    ) -> Retrieval: ...

    def by_content(
        self, arrays: IndexArrays, query: np.ndarray, allowed: np.ndarray, k: int
    ) -> Retrieval:
        """A free-text query's (or an anchor item's) pool: the ``k`` allowed items whose
        content embeddings are closest to ``query`` (``by_content``)."""
        ...

    def prepare(self, arrays: IndexArrays) -> None:
        """Start building whatever searching ``arrays`` takes (called after every change of
        the index), so a request finds it ready; returns at once."""


class MatrixProduct:
    """Exact retrieval: one matrix product over every item vector (items newer than the
    model set on the known items' scale, ``newitems``)."""

    def retrieve(
        self,
        arrays: IndexArrays,
        query: np.ndarray,
        allowed: np.ndarray,
        k: int,
        new_items: NewItems | None = None,
    ) -> Retrieval:
        return best_of(user_scores(arrays, query, new_items or NewItems()), allowed, k)

    def by_content(
        self, arrays: IndexArrays, query: np.ndarray, allowed: np.ndarray, k: int
    ) -> Retrieval:
        return by_content(arrays, query, allowed, k)

    def prepare(self, arrays: IndexArrays) -> None:
        """Nothing to build: the product needs the arrays alone."""


def best_of(scores: np.ndarray, allowed: np.ndarray, k: int) -> Retrieval:
    """The ``k`` allowed items with the highest ``scores`` (one per catalogue item)."""
    candidates = top_k(np.where(allowed, scores, -np.inf), k)
    return Retrieval(candidates, scores.__getitem__, scores)


def by_content(arrays: IndexArrays, query: np.ndarray, allowed: np.ndarray, k: int) -> Retrieval:
    """A free-text query's (or an anchor item's) pool: the allowed items whose content
    embeddings are closest to ``query``, a content embedding of the same encoder (both
    normalised, so the inner product is the cosine similarity)."""
    return best_of(arrays.content_float32 @ query, allowed, k)


def by_prior(prior: np.ndarray, allowed: np.ndarray, k: int) -> Retrieval:
    """Retrieval without a user vector: the best allowed items by ``prior``."""
    return Retrieval(top_k(np.where(allowed, prior, -np.inf), k), None, prior)


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, largest first (ties: lower index first)."""
    k = min(k, values.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < values.shape[0]:
        part = np.argpartition(-values, k - 1)[:k]
    else:
        part = np.arange(values.shape[0])
    order = np.lexsort((part, -values[part]))
    return part[order]
