"""Keeping a server current: the parameters and running experiment (reloaded when the
store announces a change), items and statistics written by other replicas, and the item
space of the model version the model server serves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from serving.app.ports import Catalogue, ExperimentStore, ItemSpaces, ParameterStore, ServedModels
from serving.core.encoders import pairing_problem
from serving.core.experiments import Experiment
from serving.core.index import IndexArrays, ItemIndex, StoredItem
from serving.core.parameters import ParameterVersion

log = logging.getLogger(__name__)
# Longer than any transaction that writes items or statistics.
OVERLAP = timedelta(seconds=10)
LOAD_PAGE = 10_000
"""Items read per query when the whole catalogue is loaded (at start-up, after a content
encoder switch): a million items' rows at once would hold several GB in Python objects."""


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
        prepare: Callable[[IndexArrays], None] | None = None,
    ) -> None:
        self._catalogue = catalogue
        self._prepare = prepare
        """Called with the index's arrays after every refresh that changed them (start-up
        and a new model space included): a retriever starts building what it searches
        them with (``Retriever.prepare``) before a request asks for it."""
        self._spaces = spaces
        self._models = models
        self._index = index
        self._interval = interval_s
        self._items_since: datetime | None = None
        self._stats_since: datetime | None = None
        # The rows read last time inside the overlap (the next read returns them again):
        # applied already at that timestamp, they are skipped. Only those: a map of every
        # item's last write would hold a million datetimes for a million items.
        self._item_versions: dict[str, datetime] = {}
        self._stats_versions: dict[str, datetime] = {}
        # The content encoder (fingerprint, width) of every live item's vector, and how
        # many items each has: the index holds the vectors of the catalogue's encoder, the
        # one most items have (counted as items change, not recounted on every refresh).
        self._encoders: dict[str, tuple[str, int]] = {}
        self._encoder_counts: Counter[tuple[str, int]] = Counter()
        # (user-encoder version, catalogue encoder, width) last followed, so a refusal to
        # pair is logged once, not on every refresh.
        self._followed: tuple[int, str, int] | None = None
        self._served_encoder: str | None = None
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
        since = now - OVERLAP
        loading, after, applied = self._items_since is None, None, False
        read_again: dict[str, datetime] = {}
        while True:
            page = await self._read_items(after)
            changed = [c for c in page if self._item_versions.get(c.item.item_id) != c.updated_at]
            if self._switch_encoder(changed):
                return await self.refresh()  # the whole catalogue again, in the new encoder
            if changed:
                self._index.upsert(changed)
                applied = True
            read_again.update((c.item.item_id, c.updated_at) for c in page if c.updated_at > since)
            if not loading or len(page) < LOAD_PAGE:
                break
            after = page[-1].item.item_id
        if not applied and not self._encoders:
            await self._empty_catalogue_takes_served_encoder()
        self._items_since, self._item_versions = since, read_again
        rows = await self._catalogue.stats_changed_since(self._stats_since)
        stats = [s for s in rows if self._stats_versions.get(s.item_id) != s.updated_at]
        if stats:
            self._index.update_stats(stats)
        self._stats_since = since
        self._stats_versions = {s.item_id: s.updated_at for s in rows if s.updated_at > since}
        before = self._index.arrays
        await self._follow_model()
        if self._prepare is not None and (applied or self._index.arrays is not before):
            self._prepare(self._index.arrays)

    async def _read_items(self, after: str | None) -> list[StoredItem]:
        """What changed since the last refresh; at the first, or after an encoder switch,
        the page of the whole catalogue after ``after`` (room reserved for all of it
        first, so the index does not copy its columns as they grow)."""
        if self._items_since is not None:
            return await self._catalogue.items_changed_since(self._items_since)
        if after is None:
            self._index.reserve(await self._catalogue.count_items())
        return await self._catalogue.items_page(after, LOAD_PAGE)

    def _switch_encoder(self, changed: list[StoredItem]) -> bool:
        """Note each item's content encoder; when most of the catalogue's vectors now come
        from another encoder than the index holds (``recsys reembed`` switched it, or this
        is the first load), empty the index so the next read loads everything in it."""
        counts = self._encoder_counts
        for entry in changed:
            item_id = entry.item.item_id
            if (before := self._encoders.pop(item_id, None)) is not None:
                counts[before] -= 1
            if not entry.deleted:
                key = (entry.encoder, entry.embedding.shape[0])
                # One tuple per encoder, shared by its items (not one per item).
                key = next((known for known in counts if known == key), key)
                self._encoders[item_id] = key
                counts[key] += 1
        counts += Counter()  # drops encoders no item has any more
        if not counts:
            return False
        (encoder, dim), _ = counts.most_common(1)[0]
        if (encoder, dim) == (self._index.encoder, self._index.content_dim):
            return False
        first = len(self._index) == 0
        log.info(
            "item index %s content encoder %s (%d-d)",
            "in" if first else "switching to",
            encoder or "(not recorded)",
            dim,
        )
        self._index.reset(dim, encoder)
        if first:
            return False  # ``changed`` is the whole catalogue already
        self._items_since = self._stats_since = None
        self._item_versions.clear()
        self._stats_versions.clear()
        return True

    async def _empty_catalogue_takes_served_encoder(self) -> None:
        """With no items yet, the first ones will be the served encoder's vectors."""
        served = await self._models.content_encoder()
        if served is None or len(self._index) or not served.dim:
            return
        if (served.fingerprint, served.dim) != (self._index.encoder, self._index.content_dim):
            self._index.reset(served.dim, served.fingerprint)

    async def _follow_model(self) -> None:
        """Use the item space of the user-encoder version the model server has ready, if
        it was trained with the content encoder of the catalogue's vectors."""
        await self._note_served_encoder()
        version = await self._models.ready_version()
        if version is None:
            return
        followed = (version, self._index.encoder, self._index.content_dim)
        if followed == self._followed:
            return
        space = await self._spaces.load_item_space(version)
        if space is None:
            log.error("Triton serves user_encoder v%d but its item space is not stored", version)
            return
        self._followed = followed
        problem = pairing_problem(space.content_encoder, *followed[1:])
        if problem is not None:
            # Like a version Triton switched to before the index followed (the recommender
            # refuses that vector): no model rather than one scored in the wrong space.
            self._index.drop_space()
            log.error(
                "not pairing user_encoder v%d with the catalogue's item vectors: %s."
                " Recommend serves the fallback (degraded) until they match: re-embed the"
                " catalogue with its encoder (`recsys reembed`) or export a version trained"
                " with the catalogue's",
                version,
                problem,
            )
            return
        # Seconds at a million items: in a worker thread, while requests are served.
        placement = await asyncio.to_thread(self._index.placed_in, space)
        self._index.set_space(space, placement)
        log.info("item index now in the space of user_encoder v%d", version)

    async def _note_served_encoder(self) -> None:
        """Say once when Triton's content encoder is not the catalogue's (new items are
        then held out of ranking until ``recsys reembed``)."""
        served = await self._models.content_encoder()
        if served is None or served.fingerprint == self._served_encoder:
            return
        self._served_encoder = served.fingerprint
        if self._index.encoder and served.fingerprint != self._index.encoder:
            log.warning(
                "Triton serves content encoder %s but the catalogue's vectors come from %s:"
                " run `recsys reembed`",
                served,
                self._index.encoder,
            )

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
