"""Non-sequential baselines every sequential model must beat, under the same protocol.

Popularity and EASE are fitted on the evaluation inputs themselves (each user's
interactions before the target), so they see exactly what the sequential model sees at
prediction time; content similarity needs no interactions at all (the cold-start
baseline).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

# The dense (items x items) part of EASE: the float64 Gram matrix, inverted in place,
# and the float32 weights made from it, both alive at once.
EASE_BYTES_PER_ITEM_PAIR = 8 + 4
# Share of the memory available at fit time that EASE may take (the rest: this process,
# the other scorers, whatever else runs on the machine).
EASE_MEMORY_SHARE = 0.6
MIRROR_BLOCK = 1024


class TooLarge(ValueError):
    """A baseline would need more memory than it may take; the message says how much."""


class Popularity:
    """Most-interacted items first (the same list for everyone, seen items removed)."""

    def __init__(self, inputs: Sequence[np.ndarray], num_items: int) -> None:
        counts = np.zeros(num_items, dtype=np.float64)
        for sequence in inputs:
            np.add.at(counts, np.asarray(sequence, np.int64) - 1, 1.0)
        self.counts = counts

    def scores(self, inputs: Sequence[np.ndarray], types: Sequence[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(inputs), len(self.counts)))


def interaction_matrix(inputs: Sequence[np.ndarray], num_items: int) -> sparse.csr_matrix:
    """Binary (users, items) sparse float32 matrix of who interacted with what: its memory
    follows the interactions, not users x items (50,000 x 17,000 dense is 3.4 GB)."""
    lengths = [len(s) for s in inputs]
    rows = np.repeat(np.arange(len(inputs)), lengths)
    cols = np.concatenate([np.asarray(s, np.int64) - 1 for s in inputs]) if sum(lengths) else []
    matrix = sparse.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(inputs), num_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # a repeated interaction counts once
    return matrix


def ease_memory_bytes(num_items: int) -> int:
    """Peak memory of fitting EASE on ``num_items`` items: its dense part (the sparse
    interaction matrix and the sparse Gram product are small next to it)."""
    return EASE_BYTES_PER_ITEM_PAIR * num_items * num_items


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else the physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _mirror_lower_to_upper(matrix: np.ndarray) -> None:
    """Copy the lower triangle onto the upper one in place, a block of rows at a time
    (the index arrays of a one-shot copy would cost more memory than the matrix)."""
    n = matrix.shape[0]
    for start in range(0, n, MIRROR_BLOCK):
        stop = min(start + MIRROR_BLOCK, n)
        block = matrix[start:stop, start:stop]
        upper = np.triu_indices(stop - start, 1)
        block[upper] = block.T[upper]
        matrix[start:stop, stop:] = matrix[stop:, start:stop].T


def spd_inverse_in_place(gram: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite, C-ordered float64 matrix, computed in its
    own memory by Cholesky (LAPACK potrf + potri); ``gram`` is overwritten and returned."""
    # A C-ordered matrix seen transposed is Fortran-ordered, so LAPACK works on it in place;
    # the upper triangle of that view is the lower triangle of ``gram``.
    factor, info = lapack.dpotrf(gram.T, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"Gram matrix not positive definite (potrf: {info})")
    inverse, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"Gram matrix is singular (potri: {info})")
    if not np.shares_memory(inverse, gram):  # LAPACK copied after all
        gram[...] = inverse.T
    _mirror_lower_to_upper(gram)
    return gram


class EASE:
    """Embarrassingly Shallow Autoencoder (Steck, WWW 2019): a closed-form item-item
    model, B = I - P / diag(P) with P = (X^T X + λI)^-1; a strong non-sequential baseline.

    X stays sparse; the (items x items) part is dense and needs ``ease_memory_bytes``
    (12 bytes per item pair: 3.5 GB at 17,000 items). The constructor raises TooLarge,
    before allocating it, when that exceeds ``memory_limit_bytes`` (default: a share of
    the memory available at that moment).
    """

    def __init__(
        self,
        inputs: Sequence[np.ndarray],
        num_items: int,
        l2: float = 500.0,
        memory_limit_bytes: int | None = None,
    ) -> None:
        if l2 <= 0:
            raise ValueError("EASE's l2 must be positive (it makes X^T X + λI invertible)")
        need = ease_memory_bytes(num_items)
        limit = memory_limit_bytes
        if limit is None:
            limit = int(EASE_MEMORY_SHARE * available_memory_bytes())
        if need > limit:
            raise TooLarge(
                f"EASE needs {need / 2**30:.1f} GiB for {num_items} items"
                f" (12 bytes per item pair), more than the {limit / 2**30:.1f} GiB it may use"
            )
        x = interaction_matrix(inputs, num_items).astype(np.float64)
        gram = np.ascontiguousarray((x.T @ x).toarray())
        gram[np.diag_indices(num_items)] += l2
        precision = spd_inverse_in_place(gram)
        precision /= -np.diag(precision).copy()[None, :]
        precision[np.diag_indices(num_items)] = 0.0
        self.weights = precision.astype(np.float32)
        self.num_items = num_items

    def scores(self, inputs: Sequence[np.ndarray], types: Sequence[np.ndarray]) -> np.ndarray:
        # Sparse rows times the dense weights: the cost follows the batch's interactions.
        return np.asarray(interaction_matrix(inputs, self.num_items) @ self.weights)


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
