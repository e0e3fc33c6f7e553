"""Per-item signals in [0, 1] that the blend weighs: popularity, freshness, relevance;
and the catalogue-wide ones computed once for every request of a second. Pure numpy."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.core.index import IndexArrays, ItemIndex
from serving.core.ranking.explore import cold_items

HOUR = 3600.0
COLD_RANKED = 2000
"""How many of the least-shown items are kept ranked for exploration's candidate pool."""


def decayed_popularity(
    popularity: np.ndarray, popularity_at: np.ndarray, now: float, half_life_hours: float
) -> np.ndarray:
    """Exponentially decayed engagement, brought from each row's timestamp to ``now``."""
    halvings = np.minimum(popularity_at - now, 0.0) / (HOUR * half_life_hours)
    return popularity * np.exp2(halvings)  # exp2 of a negative: 2.5x faster than power


def popularity_signal(popularity_now: np.ndarray) -> np.ndarray:
    """Popularity in [0, 1]: log-scaled and divided by the most popular item's value."""
    logged = np.log1p(np.maximum(popularity_now, 0.0))
    top = logged.max(initial=0.0)
    return logged / top if top > 0 else np.zeros_like(logged)


def freshness_signal(published: np.ndarray, now: float, half_life_hours: float) -> np.ndarray:
    """1 for items published now, halving every half-life; 0 when the date is unknown."""
    fresh = np.exp2(np.minimum(published - now, 0.0) / (HOUR * half_life_hours))
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
    sources: tuple[weakref.ref[Any], ...]
    """The index arrays they were computed from (``source_arrays``), weakly: signals kept
    for half-lives no request uses any more must not keep a replaced catalogue alive."""
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
            and all(a() is b for a, b in zip(self.sources, source_arrays(index), strict=True))
        )

    def of_arrays(self, arrays: IndexArrays) -> bool:
        """Whether these were computed from ``arrays`` (positions and windows as they are)."""
        return self.sources[0]() is arrays


def source_arrays(index: ItemIndex) -> tuple[IndexArrays, np.ndarray, np.ndarray]:
    """What the catalogue signals depend on (replaced, never mutated, when they change)."""
    return (index.arrays, index.popularity, index.impressions)


def catalogue_signals(
    index: ItemIndex, half_lives: tuple[float, float], now: float
) -> CatalogueSignals:
    """Popularity, freshness, availability and the coldest items at ``now`` (from the
    arrays ``index`` holds when called: another thread may replace them meanwhile)."""
    sources = arrays, popularity, impressions = source_arrays(index)
    # Replaced with popularity (and grown with the catalogue) by another thread, maybe
    # between the two reads: the rows popularity has are the ones it goes with.
    popularity_at = index.popularity_at[: len(popularity)]
    popularity = popularity_signal(
        decayed_popularity(popularity, popularity_at, now, half_lives[0])
    )
    available = arrays.available(now)
    return CatalogueSignals(
        second=int(now),
        sources=tuple(weakref.ref(source) for source in sources),
        half_lives=half_lives,
        popularity=popularity,
        freshness=freshness_signal(arrays.published, now, half_lives[1]),
        available=available,
        coldest=cold_items(available, impressions, arrays.published, COLD_RANKED),
    )
