"""Non-sequential baselines every sequential model must beat, under the same protocol.

Popularity and EASE are fitted on the evaluation inputs themselves (each user's
interactions before the target), so they see exactly what the sequential model sees at
prediction time; content similarity needs no interactions at all (the cold-start
baseline).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# EASE solves a dense (items x items) system; past this many items it costs minutes
# and gigabytes, and the caller should skip it.
EASE_MAX_ITEMS = 20_000


class Popularity:
    """Most-interacted items first (the same list for everyone, seen items removed)."""

    def __init__(self, inputs: Sequence[np.ndarray], num_items: int) -> None:
        counts = np.zeros(num_items, dtype=np.float64)
        for sequence in inputs:
            np.add.at(counts, np.asarray(sequence, np.int64) - 1, 1.0)
        self.counts = counts

    def scores(self, inputs: Sequence[np.ndarray], types: Sequence[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(inputs), len(self.counts)))


def interaction_matrix(inputs: Sequence[np.ndarray], num_items: int) -> np.ndarray:
    """Binary (users, items) float32 matrix of who interacted with what."""
    matrix = np.zeros((len(inputs), num_items), dtype=np.float32)
    for row, sequence in enumerate(inputs):
        matrix[row, np.asarray(sequence, np.int64) - 1] = 1.0
    return matrix


class EASE:
    """Embarrassingly Shallow Autoencoder (Steck, WWW 2019): a closed-form item-item
    model, B = I - P / diag(P) with P = (X^T X + λI)^-1; a strong non-sequential baseline."""

    def __init__(self, inputs: Sequence[np.ndarray], num_items: int, l2: float = 500.0) -> None:
        if num_items > EASE_MAX_ITEMS:
            raise ValueError(f"EASE needs a dense {num_items}^2 matrix; too many items")
        x = interaction_matrix(inputs, num_items).astype(np.float64)
        gram = x.T @ x
        gram[np.diag_indices(num_items)] += l2
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)
        weights[np.diag_indices(num_items)] = 0.0
        self.weights = weights.astype(np.float32)
        self.num_items = num_items

    def scores(self, inputs: Sequence[np.ndarray], types: Sequence[np.ndarray]) -> np.ndarray:
        return interaction_matrix(inputs, self.num_items) @ self.weights


class ContentSimilarity:
    """Items whose content embedding is closest (cosine) to the mean of the user's last
    ``recent`` items': what content alone recommends, new items included."""

    def __init__(self, content: np.ndarray, recent: int = 10) -> None:
        norms = np.linalg.norm(content, axis=1, keepdims=True)
        self.content = (content / np.maximum(norms, 1e-12)).astype(np.float32)
        self.recent = recent

    def scores(self, inputs: Sequence[np.ndarray], types: Sequence[np.ndarray]) -> np.ndarray:
        profiles = np.zeros((len(inputs), self.content.shape[1]), dtype=np.float32)
        for row, sequence in enumerate(inputs):
            tail = np.asarray(sequence[-self.recent :], np.int64)
            if len(tail):
                profiles[row] = self.content[tail - 1].mean(axis=0)
        return profiles @ self.content.T
