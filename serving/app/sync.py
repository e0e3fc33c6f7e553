"""Keeping a server current: the parameters and running experiment (reloaded when the
store announces a change), items and statistics written by other replicas, and the item
space of the model version the model server serves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from serving.app.ports import Catalogue, ExperimentStore, ItemSpaces, ParameterStore, ServedModels
from serving.core.experiments import Experiment
from serving.core.index import ItemIndex
from serving.core.parameters import ParameterVersion

log = logging.getLogger(__name__)
# Longer than any transaction that writes items or statistics.
OVERLAP = timedelta(seconds=10)


class ParameterCache:
    """The current parameters and running experiment; ``reload`` on every change
    notification (the adapter that listens calls it, and polls slowly as a backstop)."""

    def __init__(self, parameters: ParameterStore, experiments: ExperimentStore) -> None:
        self._store = parameters
        self._experiments = experiments
        self._current: ParameterVersion | None = None
        self._experiment: Experiment | None = None

    @property
    def current(self) -> ParameterVersion:
        assert self._current is not None, "ParameterCache.reload() not awaited"
        return self._current

    @property
    def experiment(self) -> Experiment | None:
        """The running A/B experiment, if any."""
        return self._experiment

    async def reload(self) -> None:
        latest = await self._store.latest()
        if self._current is None or latest.version != self._current.version:
            log.info("parameters now at version %d", latest.version)
        self._current = latest
        self._experiment = await self._experiments.running()


class IndexSync:
    """Loads the index at start-up and refreshes it on an interval."""

    def __init__(
        self,
        catalogue: Catalogue,
        spaces: ItemSpaces,
        models: ServedModels,
        index: ItemIndex,
        interval_s: float,
    ) -> None:
        self._catalogue = catalogue
        self._spaces = spaces
        self._models = models
        self._index = index
        self._interval = interval_s
        self._items_since: datetime | None = None
        self._stats_since: datetime | None = None
        # What was applied per item, so rows re-read in the overlap are not applied again.
        self._item_versions: dict[str, datetime] = {}
        self._stats_versions: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="index-sync")

    async def refresh(self) -> None:
        """Apply what changed since the last refresh, and follow the served model."""
        # Writers stamp rows with clock_timestamp() inside short transactions, so anything
        # committed after this point is stamped after `now - OVERLAP`: read from there next
        # time, and skip rows already applied at the same timestamp.
        now = await self._catalogue.database_now()
        changed = [
            c
            for c in await self._catalogue.items_changed_since(self._items_since)
            if self._item_versions.get(c.item.item_id) != c.updated_at
        ]
        if changed:
            self._index.upsert(changed)
            self._item_versions.update((c.item.item_id, c.updated_at) for c in changed)
        self._items_since = now - OVERLAP
        stats = [
            s
            for s in await self._catalogue.stats_changed_since(self._stats_since)
            if self._stats_versions.get(s.item_id) != s.updated_at
        ]
        if stats:
            self._index.update_stats(stats)
            self._stats_versions.update((s.item_id, s.updated_at) for s in stats)
        self._stats_since = now - OVERLAP
        await self._follow_model()

    async def _follow_model(self) -> None:
        """Use the item space of the user-encoder version the model server has ready."""
        version = await self._models.ready_version()
        current = self._index.space.version if self._index.space else None
        if version is None or version == current:
            return
        space = await self._spaces.load_item_space(version)
        if space is None:
            log.error("Triton serves user_encoder v%d but its item space is not stored", version)
            return
        self._index.set_space(space)
        log.info("item index now in the space of user_encoder v%d", version)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception as error:
                log.warning("index refresh failed: %s", error)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
