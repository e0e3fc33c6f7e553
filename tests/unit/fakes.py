"""In-memory fakes of the application's ports (serving.app.ports), for fast unit tests of
the use cases; they keep state like the real adapters, in dicts and lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from serving.core.domain import (
    EventType,
    FeedbackEvent,
    FeedbackResult,
    Item,
    LoggedList,
    LoggedRecommendation,
    UserState,
)
from serving.core.encoders import ContentEncoderId
from serving.core.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from serving.core.experiments import Experiment, ExperimentRecord
from serving.core.index import ItemIndex, ItemStatsRow, StoredItem
from serving.core.itemspace import ItemSpace, UserEncoding
from serving.core.parameters import Parameters, ParameterVersion

T0 = datetime(2026, 12, 1, tzinfo=UTC)
DIM = 4
CATEGORIES = {"a": "news", "b": "news", "c": "sport", "d": "sport", "e": "music", "f": "music"}


def content(item_id: str) -> np.ndarray:
    """A unit content embedding per item: items of one category point the same way."""
    vector = np.zeros(384, np.float32)
    vector[sorted(set(CATEGORIES.values())).index(CATEGORIES.get(item_id, "news"))] = 1.0
    vector[10 + ord(item_id[0]) % 300] = 0.5
    return vector / np.linalg.norm(vector)


def catalogue_items() -> list[Item]:
    return [Item(i, f"title {i}", categories=(c,), published_at=T0) for i, c in CATEGORIES.items()]


def item_space(version: int = 1) -> ItemSpace:
    """Learned vectors: item i's vector is a row of a fixed matrix (items a-f)."""
    learned = np.array(
        [
            [4, 0, 0, 0],
            [3, 0, 0, 0],
            [0, 4, 0, 0],
            [0, 3, 0, 0],
            [0, 0, 4, 0],
            [0, 0, 3, 0],
        ],
        np.float32,
    )
    return ItemSpace(
        version=version,
        max_len=5,
        vocabulary=tuple(CATEGORIES),
        item_embeddings=learned,
        projection_weight=np.zeros((DIM, 384), np.float32),
        projection_bias=np.zeros(DIM, np.float32),
    )


def built_index(with_space: bool = True) -> ItemIndex:
    index = ItemIndex()
    index.upsert(StoredItem(item, content(item.item_id), T0, False) for item in catalogue_items())
    if with_space:
        index.set_space(item_space())
    return index


class FakeEncoders:
    """The user encoder answers ``vector`` (and uniform attention); texts encode to the
    same unit vectors as ``content``. ``down`` makes every call Unavailable."""

    def __init__(self, vector: Sequence[float] = (1, 0, 0, 0), version: int = 1) -> None:
        self.vector = np.array(vector, np.float32)
        self.version = version
        """The newest version served (what a call naming none gets)."""
        self.older: set[int] = set()
        """Earlier versions still served (Triton keeps the one before the newest)."""
        self.while_encoding: Callable[[], None] | None = None
        """Called during each user encoding (what happens meanwhile elsewhere)."""
        self.down = False
        self.user_calls: list[np.ndarray] = []
        self.texts: list[str] = []
        self.queries: list[str] = []
        self.content_fingerprint = ""

    async def encode_user(
        self,
        item_ids: np.ndarray,
        event_types: np.ndarray,
        content: np.ndarray,
        version: int | None = None,
    ) -> UserEncoding:
        if self.down:
            raise Unavailable("triton down")
        answering = self.version if version is None else version
        if answering not in {self.version, *self.older}:
            raise Unavailable(f"user_encoder v{answering} is not served")
        self.user_calls.append(item_ids)
        if self.while_encoding is not None:
            self.while_encoding()
        attention = np.full(len(item_ids), 1.0 / len(item_ids), np.float32)
        return UserEncoding(self.vector, attention, str(answering))

    async def encode_texts(self, texts: Sequence[str], timeout_s: float = 60) -> np.ndarray:
        if self.down:
            raise Unavailable("triton down")
        self.texts.extend(texts)
        return np.stack([content(t.split()[1][0]) for t in texts])

    async def encode_query(self, text: str) -> np.ndarray:
        """A query's last word names an item: it embeds like that item's content."""
        if self.down:
            raise Unavailable("triton down")
        self.queries.append(text)
        return content(text.split()[-1])


@dataclass
class FakeServedModels:
    version: int | None = 1
    encoder: ContentEncoderId | None = None

    async def ready_version(self) -> int | None:
        return self.version

    async def content_encoder(self) -> ContentEncoderId | None:
        return self.encoder


@dataclass
class FakeParameterSource:
    current: ParameterVersion = field(
        default_factory=lambda: ParameterVersion(1, Parameters(), "system", "defaults", T0)
    )
    experiment: Experiment | None = None


@dataclass
class FakeFeedback:
    """UserStates and FeedbackLog: events by id, state per subject."""

    events: dict[str, FeedbackEvent] = field(default_factory=dict)
    variants: dict[str, str | None] = field(default_factory=dict)
    half_lives: list[float] = field(default_factory=list)
    down: bool = False
    calls: list[str] = field(default_factory=list)

    async def load_user_state(self, subject: str) -> UserState:
        if self.down:
            raise Unavailable("database down")
        mine = [e for e in self.events.values() if e.subject == subject]
        mine.sort(key=lambda e: e.occurred_at)
        return UserState(
            tuple(e.item_id for e in mine),
            tuple(e.type for e in mine),
            frozenset(e.item_id for e in mine if e.type == EventType.DISLIKE),
        )

    async def record_feedback(
        self,
        events: Sequence[FeedbackEvent],
        popularity_half_life_hours: float,
        variant_of: Callable[[str], str | None],
    ) -> FeedbackResult:
        if self.down:
            raise Unavailable("database down")
        self.half_lives.append(popularity_half_life_hours)
        fresh = [e for e in events if e.event_id not in self.events]
        for event in fresh:
            self.events[event.event_id] = event
            self.variants[event.event_id] = variant_of(event.subject)
        return FeedbackResult(len(fresh), len(events) - len(fresh))

    async def forget_user(self, user_id: str) -> int:
        self.calls.append(f"forget {user_id}")
        gone = [i for i, e in self.events.items() if e.user_id == user_id]
        for event_id in gone:
            del self.events[event_id]
        return len(gone)

    async def merge_session(self, session_id: str, user_id: str) -> int:
        moved = [e for e in self.events.values() if e.session_id == session_id and not e.user_id]
        for event in moved:
            self.events[event.event_id] = replace(event, user_id=user_id)
        return len(moved)


@dataclass
class FakeTraces:
    """DashboardTraces: records the users forgotten, in the shared call log."""

    calls: list[str] = field(default_factory=list)

    async def forget_user(self, user_id: str) -> None:
        self.calls.append(f"traces {user_id}")


@dataclass
class FakeImpressions:
    recorded: list[LoggedRecommendation] = field(default_factory=list)
    written: list[LoggedRecommendation] = field(default_factory=list)
    log: list[str] | None = None

    def record(self, entry: LoggedRecommendation) -> None:
        self.recorded.append(entry)

    async def flush(self) -> None:
        if self.log is not None:
            self.log.append("flush")
        self.written.extend(self.recorded)
        self.recorded.clear()


@dataclass
class FakeCatalogue:
    """Items and statistics stamped by a clock the test moves."""

    now: datetime = T0
    items: dict[str, StoredItem] = field(default_factory=dict)
    stats: dict[str, ItemStatsRow] = field(default_factory=dict)
    reads: int = 0

    async def upsert_items(
        self, items: Sequence[Item], embeddings: np.ndarray, encoder: str = ""
    ) -> None:
        for item, embedding in zip(items, embeddings, strict=True):
            self.items[item.item_id] = StoredItem(item, embedding, self.now, False, encoder)

    async def delete_items(self, item_ids: Sequence[str]) -> tuple[list[StoredItem], int]:
        for index, item_id in enumerate(item_ids):
            if item_id not in self.items:
                raise InvalidArgument(f"item_ids[{index}]", f"unknown item {item_id!r}")
        live = sum(not self.items[i].deleted for i in item_ids)
        for item_id in item_ids:
            self.items[item_id] = replace(self.items[item_id], updated_at=self.now, deleted=True)
        return [self.items[i] for i in item_ids], live

    async def database_now(self) -> datetime:
        return self.now

    async def items_changed_since(self, since: datetime | None) -> list[StoredItem]:
        self.reads += 1
        rows = [s for s in self.items.values() if since is None or s.updated_at > since]
        return sorted(rows, key=lambda s: s.updated_at)

    async def count_items(self) -> int:
        return len(self.items)

    async def items_page(self, after: str | None, limit: int) -> list[StoredItem]:
        self.reads += 1
        rows = sorted(self.items.values(), key=lambda s: s.item.item_id)
        return [s for s in rows if after is None or s.item.item_id > after][:limit]

    async def stats_changed_since(self, since: datetime | None) -> list[ItemStatsRow]:
        return [s for s in self.stats.values() if since is None or s.updated_at > since]

    def tick(self, seconds: float = 1) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeItemSpaces:
    spaces: dict[int, ItemSpace] = field(default_factory=dict)

    async def load_item_space(self, version: int) -> ItemSpace | None:
        space = self.spaces.get(version)
        return space.served() if space is not None else None


class FakeParameterStore:
    def __init__(self) -> None:
        self.versions: list[ParameterVersion] = [
            ParameterVersion(1, Parameters(), "system", "initial defaults", T0)
        ]

    async def latest(self) -> ParameterVersion:
        return self.versions[-1]

    async def change(
        self, change: Callable[[Parameters], Parameters], changed_by: str, reason: str
    ) -> ParameterVersion:
        current = self.versions[-1]
        created = ParameterVersion(
            current.version + 1, change(current.parameters), changed_by, reason, T0
        )
        self.versions.append(created)
        return created

    async def version(self, version: int) -> ParameterVersion | None:
        return next((v for v in self.versions if v.version == version), None)

    async def history(self, limit: int) -> list[ParameterVersion]:
        return self.versions[::-1][:limit]


class FakeExperimentStore:
    def __init__(self) -> None:
        self.records: dict[str, ExperimentRecord] = {}

    async def running(self) -> Experiment | None:
        return next((r.experiment for r in self.records.values() if r.status == "running"), None)

    async def create(self, experiment: Experiment, changed_by: str, reason: str) -> None:
        if await self.running() is not None:
            raise FailedPrecondition("an experiment is already running")
        self.records[experiment.name] = ExperimentRecord(
            experiment, "running", changed_by, reason, T0
        )

    async def load(self, name: str) -> ExperimentRecord:
        if name not in self.records:
            raise NotFound(f"name: no experiment {name!r}")
        return self.records[name]

    async def allocate(self, name: str, shares: dict[str, float]) -> None:
        record = await self.load(name)
        variants = tuple(
            replace(v, share=shares.get(v.name, v.share)) for v in record.experiment.variants
        )
        self.records[name] = replace(record, experiment=Experiment(name, variants))

    async def stop(self, name: str) -> None:
        self.records[name] = replace(await self.load(name), status="stopped")

    async def list(self) -> list[ExperimentRecord]:
        return list(self.records.values())


@dataclass
class FakeLoggedLists:
    lists: list[LoggedList] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    asked: list[tuple[datetime, int, int]] = field(default_factory=list)

    async def logged_lists(self, since: datetime, limit: int, history: int) -> list[LoggedList]:
        self.asked.append((since, limit, history))
        return self.lists[:limit]

    async def recent_users(self, count: int) -> list[str]:
        return self.users[:count]


def event(
    event_id: str,
    item_id: str,
    type: EventType = EventType.CLICK,
    user_id: str = "u1",
    session_id: str = "",
    minutes: int = 0,
) -> FeedbackEvent:
    return FeedbackEvent(
        event_id, user_id, session_id, item_id, type, T0 + timedelta(minutes=minutes)
    )
