"""The explain stage: the history items that drove each recommended item. Pure numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from serving.core.index import ItemIndex
from serving.core.itemspace import UserEncoding


def because(
    item_content: np.ndarray,
    history_content: np.ndarray,
    attention: np.ndarray,
    history_ids: Sequence[str],
    limit: int = 2,
) -> list[tuple[str, ...]]:
    """For each item, the history items that drove it: attention x content similarity."""
    if history_content.shape[0] == 0:
        return [() for _ in range(item_content.shape[0])]
    weight = np.maximum(item_content @ history_content.T, 0.0) * attention[None, :]
    # One sort for all rows, walked as Python lists: numpy scalars one by one cost more
    # than the sort itself at a list's ten rows.
    orders = np.argsort(-weight, axis=1, kind="stable").tolist()
    explanations = []
    for row, order in zip(weight.tolist(), orders, strict=True):
        chosen: list[str] = []
        for position in order:
            if row[position] <= 0 or len(chosen) == limit:
                break
            if history_ids[position] not in chosen:
                chosen.append(history_ids[position])
        explanations.append(tuple(chosen))
    return explanations


def explanations(
    index: ItemIndex, chosen: np.ndarray, history_ids: Sequence[str], encoding: UserEncoding | None
) -> list[tuple[str, ...]]:
    """For each chosen position, up to two history items it is "because of" (none without
    the model's attention)."""
    if encoding is None:
        return [() for _ in chosen]
    history_ids = list(history_ids)[-len(encoding.attention) :]
    positions = [index.position(i) for i in history_ids]
    known = [
        (i, p, a)
        for i, p, a in zip(history_ids, positions, encoding.attention, strict=True)
        if p is not None
    ]
    arrays = index.arrays
    return because(
        arrays.content_of(chosen),
        arrays.content_of([p for _, p, _ in known]),
        np.array([a for _, _, a in known], dtype=np.float32),
        [i for i, _, _ in known],
    )
