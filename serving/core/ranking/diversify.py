"""The diversify stage: maximal marginal relevance over content embeddings, with a
per-category cap. Pure numpy."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from serving.core.ranking.retrieve import top_k


def diversify(
    scores: np.ndarray,
    content_of: Callable[[np.ndarray], np.ndarray],
    categories: Callable[[], Sequence[str]],
    k: int,
    diversity: float,
    per_category_cap: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximal marginal relevance: pick ``k`` rows greedily by ``score - diversity x (highest
    content similarity to a row already picked)``, at most ``per_category_cap`` rows per
    category (0: no cap; ``categories`` is only called then). ``content_of(rows)`` gives the
    content embeddings of those rows: only the rows that compete are read. Returns the
    picked rows in order and each row's penalty.

    ``diversity`` 0 keeps the order of ``scores`` (apart from the cap). Without a cap only a
    shortlist of the best-scored rows competes, which keeps the greedy loop short; with one,
    every row may be needed to fill the list.
    """
    n = scores.shape[0]
    if not diversity and not per_category_cap:
        return top_k(scores, k), np.zeros(n)
    # In row order, so that ties go to the lower row as an argmax over all rows would.
    shortlist = np.arange(n) if per_category_cap else np.sort(top_k(scores, max(4 * k, 50)))
    competing = scores[shortlist]
    content = content_of(shortlist) if diversity else None
    closest = np.zeros(shortlist.shape[0])  # highest similarity to anything picked so far
    open_rows = np.ones(shortlist.shape[0], bool)
    penalty = np.zeros(n)
    per_category: dict[str, int] = {}
    row_categories = categories() if per_category_cap else ()
    picked: list[int] = []
    while len(picked) < min(k, n) and open_rows.any():
        adjusted = np.where(open_rows, competing - diversity * closest, -np.inf)
        local = int(np.argmax(adjusted))
        open_rows[local] = False
        row = int(shortlist[local])
        if per_category_cap:
            category = row_categories[row]
            if per_category.get(category, 0) >= per_category_cap:
                continue
            per_category[category] = per_category.get(category, 0) + 1
        penalty[row] = diversity * closest[local]
        picked.append(row)
        if content is not None:
            closest = np.maximum(closest, content @ content[local])
    return np.array(picked, dtype=np.int64), penalty
