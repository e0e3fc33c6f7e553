"""Per-item signals in [0, 1] that the blend weighs: popularity, freshness, relevance;
and the catalogue-wide ones computed once for every request of a second. Pure numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.core.index import ItemIndex
from serving.core.ranking.explore import cold_items

HOUR = 3600.0
COLD_RANKED = 2000
"""How many of the least-shown items are kept ranked for exploration's candidate pool."""


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


@dataclass(frozen=True)
class CatalogueSignals:
    """Per-item signals that do not depend on the user (the caller caches them)."""

    second: int
    arrays: tuple[object, ...]
    """The index arrays they were computed from (compared by identity)."""
    half_lives: tuple[float, float]
    popularity: np.ndarray
    freshness: np.ndarray
    available: np.ndarray
    """Live items inside their availability window (at one-second resolution)."""
    coldest: np.ndarray
    """Live items, least shown first (newest first among equals)."""

    def fresh(self, index: ItemIndex, half_lives: tuple[float, float], now: float) -> bool:
        """Whether these still hold for ``index`` at ``now`` with ``half_lives``."""
        return (
            self.second == int(now)
            and self.half_lives == half_lives
            and all(a is b for a, b in zip(self.arrays, source_arrays(index), strict=True))
        )


def source_arrays(index: ItemIndex) -> tuple[object, ...]:
    """What the catalogue signals depend on (replaced, never mutated, when they change)."""
    return (index.arrays, index.popularity, index.impressions)


def catalogue_signals(
    index: ItemIndex, half_lives: tuple[float, float], now: float
) -> CatalogueSignals:
    """Popularity, freshness, availability and the coldest items at ``now``."""
    popularity = popularity_signal(
        decayed_popularity(index.popularity, index.popularity_at, now, half_lives[0])
    )
    available = index.arrays.available(now)
    return CatalogueSignals(
        second=int(now),
        arrays=source_arrays(index),
        half_lives=half_lives,
        popularity=popularity,
        freshness=freshness_signal(index.arrays.published, now, half_lives[1]),
        available=available,
        coldest=cold_items(available, index.impressions, index.arrays.published, COLD_RANKED),
    )
