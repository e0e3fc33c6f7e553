"""The filter stage: which catalogue items a list may show (live and available, not
seen, disliked or excluded, inside the category rules)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from serving.core.index import ItemIndex


@dataclass(frozen=True)
class Rules:
    """What one request may show, from the parameters, the user and the request."""

    excluded_ids: frozenset[str]
    """Seen (when the parameters exclude them), disliked and requested exclusions."""
    include_categories: tuple[Sequence[str], ...] = ()
    """Each non-empty entry is one rule: only items in one of its categories."""
    exclude_categories: frozenset[str] = frozenset()


def allowed_items(index: ItemIndex, available: np.ndarray, rules: Rules) -> np.ndarray:
    """Mask of the items ``rules`` allow among the ``available`` ones."""
    allowed = allowed_mask(available, index.positions, rules.excluded_ids)
    for include in rules.include_categories:
        if include:
            allowed &= index.in_categories(include)
    if rules.exclude_categories:
        allowed &= ~index.in_categories(sorted(rules.exclude_categories))
    return allowed


def allowed_mask(
    live: np.ndarray, position_of: dict[str, int] | None, excluded: Iterable[str]
) -> np.ndarray:
    """Live items minus the excluded ids (seen, disliked, requested exclusions)."""
    mask = live.copy()
    if position_of is not None:
        for item_id in excluded:
            position = position_of.get(item_id)
            if position is not None:
                mask[position] = False
    return mask
