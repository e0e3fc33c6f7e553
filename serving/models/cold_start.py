"""Placing an item newer than the model: its learned embedding imputed from the known
items whose content is closest (a scoring-time step, no training).

An item added after training has text but no learned embedding; scored by its projected
content alone it sits apart from every known item (which carry a learned embedding on
top), so a user's vector rarely reaches it. Giving it the similarity-weighted mean of its
k nearest known items' learned embeddings puts it where its content neighbours are, so it
is recommended to the users who like them. Pure numpy, so the orchestrator can call it
when an item enters the index.
"""

from __future__ import annotations

import numpy as np

DEFAULT_NEIGHBOURS = 10


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


def impute_item_vectors(
    content_new: np.ndarray,
    content_known: np.ndarray,
    vectors_known: np.ndarray,
    k: int = DEFAULT_NEIGHBOURS,
) -> np.ndarray:
    """(new, dim) learned-embedding estimates for items with content only.

    ``content_new`` (new, c) and ``content_known`` (known, c) are content embeddings,
    ``vectors_known`` (known, dim) the known items' learned embeddings, row for row.
    Each new item gets the mean of its ``k`` most cosine-similar known items' vectors,
    weighted by their (positive) similarity; a convex combination, so a bound on the
    known vectors' norms holds for the imputed ones. No known item (or no positive
    similarity): zeros, which is what the item had without imputation.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if len(content_known) != len(vectors_known):
        raise ValueError("content_known and vectors_known must have one row per known item")
    out = np.zeros((len(content_new), vectors_known.shape[1]), dtype=np.float32)
    if len(content_new) == 0 or len(content_known) == 0:
        return out
    similarity = _unit(content_new.astype(np.float32)) @ _unit(content_known.astype(np.float32)).T
    k = min(k, len(content_known))
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    weights = np.maximum(np.take_along_axis(similarity, nearest, axis=1), 0.0)
    totals = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    out[:] = np.einsum("nk,nkd->nd", weights, vectors_known[nearest].astype(np.float32))
    return out
