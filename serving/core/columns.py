"""Columns that grow at the end without copying what they hold.

The item index replaces its arrays rather than changing them, so a request always reads
one consistent snapshot. Copying every column to add a few rows costs a million-item
catalogue a gigabyte per write, and a paged load of N items O(N²) copying with twice
the memory at its peak. Here a column is a prefix view of a buffer with spare rows:
adding rows writes them into the spare ones, which no snapshot's view covers, and hands
out a longer view of the same buffer. Spare rows that were never written take no
memory (the operating system maps pages on first write).
"""

from __future__ import annotations

import numpy as np


class GrowingColumns:
    """The buffers behind one owner's named columns, and how far each is filled."""

    def __init__(self) -> None:
        self._buffers: dict[str, tuple[np.ndarray, int]] = {}
        self._capacity = 0

    def reserve(self, rows: int) -> None:
        """Make buffers allocated from now on hold at least ``rows`` rows (a load that
        knows how many items come then grows without reallocating)."""
        self._capacity = max(self._capacity, rows)

    def extended(
        self, name: str, column: np.ndarray, grow: int, fill: object = 0, copy: bool = False
    ) -> np.ndarray:
        """``column`` with ``grow`` rows of ``fill`` after it: written into the spare rows
        of its buffer when ``column`` is that buffer's filled part and they suffice, else
        (or with ``copy``: the caller will change rows a snapshot holds) into a new buffer
        with room to spare, so each row is copied O(1) times as a column grows."""
        size = len(column)
        kept = self._buffers.get(name)
        if (
            not copy
            and kept is not None
            and kept[1] == size
            and size + grow <= len(kept[0])
            and (column.base is kept[0] or size == 0)
        ):
            buffer = kept[0]
        else:
            buffer = self._allocate(column, grow)
        buffer[size : size + grow] = fill
        self._buffers[name] = (buffer, size + grow)
        return buffer[: size + grow]

    def _allocate(self, column: np.ndarray, grow: int) -> np.ndarray:
        size = len(column)
        rows = max(self._capacity, 2 * (size + grow))
        buffer = np.empty((rows, *column.shape[1:]), column.dtype)
        buffer[:size] = column
        return buffer
