"""The diversify stage: maximal marginal relevance over content embeddings, with a
per-category cap. Pure numpy."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from serving.core.ranking.retrieve import top_k


def diversify(
    scores: np.ndarray,
    content: np.ndarray,
    categories: Callable[[], Sequence[str]],
    k: int,
    diversity: float,
    per_category_cap: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximal marginal relevance: pick ``k`` rows greedily by ``score - diversity x (highest
    content similarity to a row already picked)``, at most ``per_category_cap`` rows per
    category (0: no cap; ``categories`` is only called then). Returns the picked rows in
    order and each row's penalty.

    ``diversity`` 0 keeps the order of ``scores`` (apart from the cap). Without a cap only a
    shortlist of the best-scored rows competes, which keeps the greedy loop short; with one,
    every row may be needed to fill the list.
    """
    n = scores.shape[0]
    if not diversity and not per_category_cap:
        return top_k(scores, k), np.zeros(n)
    shortlist = np.arange(n) if per_category_cap else top_k(scores, max(4 * k, 50))
    penalty = np.zeros(n)
    closest = np.zeros(n)  # highest similarity to anything picked so far
    open_rows = np.zeros(n, bool)
    open_rows[shortlist] = True
    per_category: dict[str, int] = {}
    row_categories = categories() if per_category_cap else ()
    picked: list[int] = []
    while len(picked) < min(k, n) and open_rows.any():
        adjusted = np.where(open_rows, scores - diversity * closest, -np.inf)
        row = int(np.argmax(adjusted))
        open_rows[row] = False
        if per_category_cap:
            category = row_categories[row]
            if per_category.get(category, 0) >= per_category_cap:
                continue
            per_category[category] = per_category.get(category, 0) + 1
        penalty[row] = diversity * closest[row]
        picked.append(row)
        if diversity:
            closest = np.maximum(closest, content @ content[row])
    return np.array(picked, dtype=np.int64), penalty
