"""The ports: what the use cases need from the outside, as small Protocols.

The adapters (``serving.adapters.postgres``, ``serving.adapters.triton``) implement them;
unit tests implement them in memory. A port raises the domain's errors (``Unavailable``
when its backend is down), never a driver's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

import numpy as np

from serving.core.domain import (
    FeedbackEvent,
    FeedbackResult,
    Item,
    LoggedList,
    LoggedRecommendation,
    UserState,
)
from serving.core.encoders import ContentEncoderId
from serving.core.experiments import Experiment, ExperimentRecord
from serving.core.index import ItemStatsRow, StoredItem
from serving.core.itemspace import ItemSpace, UserEncoding
from serving.core.parameters import Parameters, ParameterVersion


class Encoders(Protocol):
    """The models (Triton in production)."""

    async def encode_user(
        self,
        item_ids: np.ndarray,
        event_types: np.ndarray,
        content: np.ndarray,
        version: int | None = None,
    ) -> UserEncoding:
        """One user's vector from ``version`` of the user encoder (None: the newest the
        model server serves); Unavailable when it does not serve that version."""

    async def encode_texts(self, texts: Sequence[str], timeout_s: float = 60) -> np.ndarray: ...

    async def encode_query(self, text: str) -> np.ndarray:
        """(dim,) content embedding of one free-text query, in the items' content space,
        within a request's deadline (Unavailable past it)."""

    @property
    def content_fingerprint(self) -> str:
        """The content encoder the vectors of ``encode_texts`` come from ("" unknown)."""
        ...


class ServedModels(Protocol):
    """Which user-encoder version and content encoder the model server serves."""

    async def ready_version(self) -> int | None: ...

    async def content_encoder(self) -> ContentEncoderId | None: ...


class ParameterSource(Protocol):
    """The current parameters and running experiment, as this server last loaded them."""

    @property
    def current(self) -> ParameterVersion: ...

    @property
    def experiment(self) -> Experiment | None: ...


class UserStates(Protocol):
    async def load_user_state(self, subject: str) -> UserState:
        """The recent interactions of a user or anonymous session (empty when unknown)."""
        ...


class FeedbackLog(Protocol):
    """Events, and the user state and item statistics they update, written together."""

    async def record_feedback(
        self,
        events: Sequence[FeedbackEvent],
        popularity_half_life_hours: float,
        variant_of: Callable[[str], str | None],
    ) -> FeedbackResult: ...

    async def forget_user(self, user_id: str) -> int:
        """Delete the user's events, state and lists; the number of events deleted."""
        ...

    async def merge_session(self, session_id: str, user_id: str) -> int: ...


class DashboardTraces(Protocol):
    """What the dashboard's rollups keep about a user (last seen, attributed lists)."""

    async def forget_user(self, user_id: str) -> None:
        """Delete them; needs the user's events and lists still there (it reads them)."""
        ...


class Impressions(Protocol):
    """Served lists, logged off the hot path."""

    def record(self, entry: LoggedRecommendation) -> None: ...

    async def flush(self) -> None: ...


class Catalogue(Protocol):
    """Items with their content embeddings, and their engagement statistics."""

    async def upsert_items(
        self, items: Sequence[Item], embeddings: np.ndarray, encoder: str = ""
    ) -> None:
        """Store ``items`` with ``embeddings``, recorded as produced by ``encoder``."""
        ...

    async def delete_items(self, item_ids: Sequence[str]) -> tuple[list[StoredItem], int]:
        """Soft-delete ``item_ids`` in one transaction (their events stay) and return them
        as now stored (``deleted``) with how many were live before. An id that names no
        item is InvalidArgument naming ``item_ids[i]``, and nothing is written."""
        ...

    async def database_now(self) -> datetime:
        """The clock that stamps the changes (read before reading them)."""
        ...

    async def items_changed_since(self, since: datetime | None) -> list[StoredItem]: ...

    async def items_page(self, after: str | None, limit: int) -> list[StoredItem]:
        """Up to ``limit`` items (deleted ones too) in item id order after ``after`` (None:
        from the first)."""
        ...

    async def count_items(self) -> int:
        """How many items the catalogue holds, deleted ones too: what a full load of
        ``items_page`` reserves room for."""
        ...

    async def stats_changed_since(self, since: datetime | None) -> list[ItemStatsRow]: ...


class ItemSpaces(Protocol):
    async def load_item_space(self, version: int) -> ItemSpace | None:
        """The version's item space as an orchestrator keeps it (``ItemSpace.served``)."""
        ...


class ParameterStore(Protocol):
    """Versioned parameters; every new version is announced to every server."""

    async def latest(self) -> ParameterVersion: ...

    async def change(
        self, change: Callable[[Parameters], Parameters], changed_by: str, reason: str
    ) -> ParameterVersion: ...

    async def version(self, version: int) -> ParameterVersion | None: ...

    async def history(self, limit: int) -> list[ParameterVersion]: ...


class ExperimentStore(Protocol):
    async def running(self) -> Experiment | None: ...

    async def create(self, experiment: Experiment, changed_by: str, reason: str) -> None: ...

    async def load(self, name: str) -> ExperimentRecord: ...

    async def allocate(self, name: str, shares: dict[str, float]) -> None: ...

    async def stop(self, name: str) -> None: ...

    async def list(self) -> list[ExperimentRecord]: ...


class LoggedLists(Protocol):
    async def logged_lists(self, since: datetime, limit: int, history: int) -> list[LoggedList]:
        """The newest ``limit`` full-policy lists served since ``since``."""
        ...

    async def recent_users(self, count: int) -> list[str]: ...
