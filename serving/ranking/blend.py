"""Scoring: relevance, popularity and freshness blended by the parameters; filters;
the negative-feedback demotion; and the "because" explanation. Pure numpy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from serving.ranking.parameters import Parameters

HOUR = 3600.0


def decayed_popularity(
    popularity: np.ndarray, popularity_at: np.ndarray, now: float, half_life_hours: float
) -> np.ndarray:
    """Exponentially decayed engagement, brought from each row's timestamp to ``now``."""
    age_hours = np.maximum(now - popularity_at, 0.0) / HOUR
    return popularity * np.power(0.5, age_hours / half_life_hours)


def popularity_signal(popularity_now: np.ndarray) -> np.ndarray:
    """Popularity in [0, 1]: log-scaled and divided by the most popular item's value."""
    logged = np.log1p(np.maximum(popularity_now, 0.0))
    top = logged.max(initial=0.0)
    return logged / top if top > 0 else np.zeros_like(logged)


def freshness_signal(published: np.ndarray, now: float, half_life_hours: float) -> np.ndarray:
    """1 for items published now, halving every half-life; 0 when the date is unknown."""
    age_hours = np.maximum(now - published, 0.0) / HOUR
    fresh = np.power(0.5, age_hours / half_life_hours)
    return np.nan_to_num(fresh, nan=0.0)


def relevance_signal(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Inner-product ``scores`` mapped to (0, 1) by a logistic of their z-score against
    the ``reference`` scores (the catalogue), so they blend on the same scale as
    popularity and freshness."""
    std = float(reference.std()) or 1.0
    return 1.0 / (1.0 + np.exp(-(scores - float(reference.mean())) / std))


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


def negative_similarity(content: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """For each row of ``content``, its highest cosine similarity to a negative item (>= 0)."""
    if negatives.shape[0] == 0:
        return np.zeros(content.shape[0])
    return np.maximum((content @ negatives.T).max(axis=1), 0.0)


@dataclass(frozen=True)
class Blend:
    """Per-candidate weighted components; ``total`` is what the ranking sorts by."""

    relevance: np.ndarray
    popularity: np.ndarray
    freshness: np.ndarray
    negative_feedback: np.ndarray
    exploration: np.ndarray

    @property
    def exploitation(self) -> np.ndarray:
        """Everything but the exploration bonus."""
        return self.relevance + self.popularity + self.freshness - self.negative_feedback

    @property
    def total(self) -> np.ndarray:
        return self.exploitation + self.exploration

    def components(self, row: int) -> dict[str, float]:
        return {
            "relevance": float(self.relevance[row]),
            "popularity": float(self.popularity[row]),
            "freshness": float(self.freshness[row]),
            "negative_feedback": -float(self.negative_feedback[row]),
            "exploration": float(self.exploration[row]),
        }


def blend(
    params: Parameters,
    relevance: np.ndarray,
    popularity: np.ndarray,
    freshness: np.ndarray,
    negative: np.ndarray,
    exploration: np.ndarray | None = None,
) -> Blend:
    """Weight the signals (each in [0, 1]) of the candidates; ``exploration`` comes
    already weighted (see serving.ranking.exploration)."""
    return Blend(
        relevance=params.relevance_weight * relevance,
        popularity=params.popularity_weight * popularity,
        freshness=params.freshness_weight * freshness,
        negative_feedback=params.negative_feedback_penalty * negative,
        exploration=np.zeros_like(relevance) if exploration is None else exploration,
    )


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
    explanations = []
    for row in weight:
        chosen: list[str] = []
        for position in np.argsort(-row):
            if row[position] <= 0 or len(chosen) == limit:
                break
            if history_ids[position] not in chosen:
                chosen.append(history_ids[position])
        explanations.append(tuple(chosen))
    return explanations
