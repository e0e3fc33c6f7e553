"""Domain types shared by every layer and by the SDK: plain data, standard library only
(the SDK installs without numpy or pydantic), no transport here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum

USER_ENCODER = "user_encoder"
CONTENT_ENCODER = "content_encoder"
"""The two models' names: in Triton's model repository and in the stored artifacts."""


class EventType(IntEnum):
    """What a user did with an item (same numbers as the proto enum)."""

    UNSPECIFIED = 0
    CLICK = 1
    LIKE = 2
    DISLIKE = 3
    SKIP = 4
    ADD_TO_CART = 5
    PURCHASE = 6


NEGATIVE_EVENTS = frozenset({EventType.DISLIKE, EventType.SKIP})
POSITIVE_EVENTS = frozenset(
    {EventType.CLICK, EventType.LIKE, EventType.ADD_TO_CART, EventType.PURCHASE}
)


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    description: str = ""
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    published_at: datetime | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    available_from: datetime | None = None
    available_until: datetime | None = None

    def text(self) -> str:
        """The text the content encoder reads."""
        parts = [self.title, self.description]
        if self.categories:
            parts.append("Categories: " + ", ".join(self.categories))
        if self.tags:
            parts.append("Tags: " + ", ".join(self.tags))
        return ". ".join(p.strip() for p in parts if p.strip())


@dataclass(frozen=True)
class FeedbackEvent:
    event_id: str
    user_id: str
    session_id: str
    item_id: str
    type: EventType
    occurred_at: datetime
    recommendation_id: str = ""
    value: float = 0.0

    @property
    def subject(self) -> str:
        """Whose state the event changes: the user, or the anonymous session."""
        return subject_key(self.user_id, self.session_id)


def subject_key(user_id: str, session_id: str) -> str:
    """State key of a caller: the user id, or ``session:<id>`` for anonymous visitors."""
    return user_id if user_id else f"session:{session_id}"


@dataclass(frozen=True)
class RecommendQuery:
    user_id: str
    session_id: str
    k: int
    exclude_item_ids: frozenset[str] = frozenset()
    context: dict[str, str] = field(default_factory=dict)
    query: str | None = None
    """The user's request in their own words (None: no query)."""

    @property
    def subject(self) -> str:
        return subject_key(self.user_id, self.session_id)


@dataclass(frozen=True)
class SimilarQuery:
    """More like this: the items closest to one catalogue item or to a text, under the
    filters of an optional subject (seen, disliked) and of the request."""

    k: int
    item_id: str | None = None
    text: str | None = None
    user_id: str = ""
    session_id: str = ""
    exclude_item_ids: frozenset[str] = frozenset()
    context: dict[str, str] = field(default_factory=dict)

    @property
    def subject(self) -> str | None:
        """Whose state filters the list; None when the request names nobody."""
        if not self.user_id and not self.session_id:
            return None
        return subject_key(self.user_id, self.session_id)


@dataclass(frozen=True)
class UserState:
    """A user's recent interactions (oldest first) and disliked items."""

    item_ids: tuple[str, ...] = ()
    event_types: tuple[EventType, ...] = ()
    disliked: frozenset[str] = frozenset()
    earlier_items: frozenset[str] = frozenset()
    """Items of interactions older than the recent ones kept in ``item_ids`` (known once
    that history is full): seen too, so excluded with them when seen items are."""


@dataclass(frozen=True)
class ScoredItem:
    item_id: str
    score: float
    components: dict[str, float]
    because_item_ids: tuple[str, ...] = ()
    propensity: float = 1.0
    """Probability that the policy puts this item in the list (for off-policy evaluation)."""
    because_query: bool = False
    """The query (or SimilarItems' anchor) drove its relevance more than the history."""


class _Listed:
    """A served list's ``items``, and their ids in order."""

    items: tuple[ScoredItem, ...]

    @property
    def item_ids(self) -> list[str]:
        return [item.item_id for item in self.items]


@dataclass(frozen=True)
class Recommendation(_Listed):
    recommendation_id: str
    items: tuple[ScoredItem, ...]
    model_version: str
    degraded: bool
    variant: str
    parameter_version: int


@dataclass(frozen=True)
class SimilarList(_Listed):
    """A "more like this" list (not logged: no recommendation id)."""

    items: tuple[ScoredItem, ...]
    degraded: bool
    variant: str
    parameter_version: int


@dataclass(frozen=True)
class UserPreview:
    """A user's top list under the current parameters and under a candidate change."""

    user_id: str
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True)
class FeedbackResult:
    """What a LogFeedback call did: events newly recorded, and retries already recorded."""

    accepted: int
    duplicates: int


@dataclass(frozen=True)
class OffPolicyEstimate:
    """A candidate policy's click-through rate estimated from logged impressions (see
    ``serving.core.offpolicy``)."""

    recommendations: int
    impressions: int
    logged_ctr: float
    ips_ctr: float
    snips_ctr: float
    ips_standard_error: float
    effective_sample_size: float


@dataclass(frozen=True)
class LoggedRecommendation:
    """A served list with who it was for and how long it took, waiting to be logged."""

    recommendation: Recommendation
    user_id: str
    session_id: str
    latency_ms: float
    served_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When it was served; written as created_at (the batch is written later)."""


@dataclass(frozen=True)
class LoggedList:
    """A logged list as off-policy evaluation replays it."""

    recommendation_id: str
    state: UserState
    """The subject's interactions before the list was served (rebuilt from events)."""
    item_ids: tuple[str, ...]
    propensities: tuple[float, ...]
    clicked: frozenset[str]
