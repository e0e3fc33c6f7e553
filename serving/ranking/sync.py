"""Keeping a server current: parameters (LISTEN/NOTIFY), items and statistics written by
other replicas, and the item space of the model version Triton serves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

import psycopg
from psycopg_pool import AsyncConnectionPool

from serving.inference.client import TritonEncoders
from serving.ranking.experiments import Experiment
from serving.ranking.index import ItemIndex
from serving.ranking.parameters import ParameterVersion
from serving.store import artifacts, items
from serving.store import experiments as experiment_store
from serving.store import parameters as parameter_store

log = logging.getLogger(__name__)
# Longer than any transaction that writes items or statistics.
OVERLAP = timedelta(seconds=10)


class ParameterCache:
    """The current parameters and running experiment, reloaded on every NOTIFY (and on a
    slow poll as a backstop)."""

    def __init__(self, pool: AsyncConnectionPool, url: str) -> None:
        self._pool = pool
        self._url = url
        self._current: ParameterVersion | None = None
        self.experiment: Experiment | None = None
        """The running A/B experiment, if any."""
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> ParameterVersion:
        assert self._current is not None, "ParameterCache.start() not awaited"
        return self._current

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._listen(), name="parameter-listener")

    async def reload(self) -> None:
        latest = await parameter_store.current_parameters(self._pool)
        if self._current is None or latest.version != self._current.version:
            log.info("parameters now at version %d", latest.version)
        self._current = latest
        self.experiment = await experiment_store.running_experiment(self._pool)

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {parameter_store.CHANNEL}")
                    await self.reload()  # anything missed while (re)connecting
                    while True:
                        async for _ in conn.notifies(timeout=30):
                            await self.reload()
                        await self.reload()  # a slow poll as a backstop
            except (psycopg.Error, OSError) as error:
                log.warning("parameter listener lost the database (%s); retrying", error)
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class IndexSync:
    """Loads the index at start-up and refreshes it on an interval."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        index: ItemIndex,
        encoders: TritonEncoders,
        interval_s: float,
    ) -> None:
        self._pool = pool
        self._index = index
        self._encoders = encoders
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
        # Writers stamp rows with clock_timestamp() inside short transactions, so anything
        # committed after this point is stamped after `now - OVERLAP`: read from there next
        # time, and skip rows already applied at the same timestamp.
        now = await items.database_now(self._pool)
        changed = [
            c
            for c in await items.items_changed_since(self._pool, self._items_since)
            if self._item_versions.get(c.item.item_id) != c.updated_at
        ]
        if changed:
            self._index.upsert(changed)
            self._item_versions.update((c.item.item_id, c.updated_at) for c in changed)
        self._items_since = now - OVERLAP
        stats = [
            s
            for s in await items.stats_changed_since(self._pool, self._stats_since)
            if self._stats_versions.get(s.item_id) != s.updated_at
        ]
        if stats:
            self._index.update_stats(stats)
            self._stats_versions.update((s.item_id, s.updated_at) for s in stats)
        self._stats_since = now - OVERLAP
        await self._follow_model()

    async def _follow_model(self) -> None:
        """Use the item space of the user-encoder version Triton has ready."""
        version = await self._encoders.ready_version()
        current = self._index.space.version if self._index.space else None
        if version is None or version == current:
            return
        space = await artifacts.load_item_space(self._pool, version)
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
