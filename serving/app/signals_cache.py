"""The catalogue signals for each request, without the request computing them.

Popularity, freshness, availability and the coldest items are passes over the whole
catalogue: 70 to 220 ms at a million items, on the event loop once a second (and after
every statistics refresh) when the request that found them stale computed them, which
every request queued behind. Here a worker thread recomputes them while requests keep the
last ones, a few seconds at most; a request computes them itself only when none fit the
index it ranks: the first, after the catalogue changed (an upsert, another model space:
positions and windows may differ), or for half-lives no one asked for yet.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from serving.core.index import ItemIndex
from serving.core.ranking.signals import CatalogueSignals, catalogue_signals

log = logging.getLogger(__name__)

STALE_LIMIT_S = 5
"""Requests use signals this many seconds old at most (availability windows, decay)."""
KEPT_HALF_LIVES = 16
"""Half-life pairs kept (one per parameter version and experiment variant in use)."""

HalfLives = tuple[float, float]


class SignalsCache:
    """Catalogue signals per half-life pair, refreshed in one worker thread."""

    def __init__(self, stale_limit_s: float = STALE_LIMIT_S) -> None:
        self.stale_limit_s = stale_limit_s
        self._kept: dict[HalfLives, CatalogueSignals] = {}
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="catalogue-signals")
        self._refreshing: Future[CatalogueSignals] | None = None

    def signals(self, index: ItemIndex, half_lives: HalfLives, now: float) -> CatalogueSignals:
        """Signals for ``index`` at ``now``: current ones, kept ones while a refresh runs,
        or (when none fit the catalogue) computed here."""
        kept = self._kept.get(half_lives)
        if kept is not None and kept.fresh(index, half_lives, now):
            return kept
        if (
            kept is not None
            and kept.of_arrays(index.arrays)
            and now - kept.second < self.stale_limit_s
        ):
            self._refresh(index, half_lives, now)
            return kept
        return self._keep(catalogue_signals(index, half_lives, now))

    def wait(self) -> None:
        """Block until a refresh in progress is done (tests)."""
        refreshing = self._refreshing
        if refreshing is not None:
            refreshing.result()

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    def _refresh(self, index: ItemIndex, half_lives: HalfLives, now: float) -> None:
        """Recompute in the worker unless a refresh is running already (the next stale
        request asks again)."""
        if self._refreshing is not None and not self._refreshing.done():
            return
        self._refreshing = self._worker.submit(catalogue_signals, index, half_lives, now)
        self._refreshing.add_done_callback(lambda done: self._kept_when_done(index, done))

    def _kept_when_done(self, index: ItemIndex, refreshed: Future[CatalogueSignals]) -> None:
        """Keep what the worker computed unless the catalogue changed meanwhile."""
        if refreshed.cancelled():
            return
        if (error := refreshed.exception()) is not None:
            log.error("refreshing the catalogue signals failed", exc_info=error)
        elif refreshed.result().of_arrays(index.arrays):
            self._keep(refreshed.result())

    def _keep(self, signals: CatalogueSignals) -> CatalogueSignals:
        if len(self._kept) >= KEPT_HALF_LIVES and signals.half_lives not in self._kept:
            self._kept.clear()  # parameter versions and experiments moved on
        self._kept[signals.half_lives] = signals
        return signals
