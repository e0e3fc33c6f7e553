"""Request validation: every problem is InvalidArgument naming the field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from serving.core.domain import EventType, FeedbackEvent, Item, RecommendQuery, SimilarQuery
from serving.core.errors import InvalidArgument
from serving.core.experiments import Variant
from serving.core.parameters import Parameters, parse_parameters

MAX_ID_LENGTH = 256
MAX_K = 1000
MAX_EVENTS = 10_000
MAX_ITEMS = 1000
MAX_EXCLUDED = 10_000
MAX_TEXT_LENGTH = 20_000
MAX_CLOCK_SKEW = timedelta(minutes=5)
SHARE_TOLERANCE = 1e-6
MAX_VARIANTS = 20
MAX_QUERY_LENGTH = 1000
"""Longest free-text query (Recommend's query, SimilarItems' text), in characters: a
sentence or two is what a person types; the content encoder reads 256 tokens at most."""


def check_id(field: str, value: str, *, required: bool = True) -> None:
    if not value:
        if required:
            raise InvalidArgument(field, "must not be empty")
        return
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(field, f"longer than {MAX_ID_LENGTH} characters")
    if not value.isprintable():
        raise InvalidArgument(field, "contains control characters")


def check_subject(prefix: str, user_id: str, session_id: str) -> None:
    """A caller is a user id or, for an anonymous visitor, a session id."""
    check_id(f"{prefix}user_id", user_id, required=False)
    check_id(f"{prefix}session_id", session_id, required=False)
    if not user_id and not session_id:
        raise InvalidArgument(f"{prefix}user_id", "must not be empty (or give session_id)")


CATEGORY_FILTERS = ("include_categories", "exclude_categories")
"""Request ``context`` keys: comma-separated categories to keep to, or to leave out."""


def context_categories(context: Mapping[str, str], key: str) -> list[str]:
    return [c.strip() for c in context.get(key, "").split(",") if c.strip()]


def check_text(field: str, text: str) -> None:
    """A free-text query: not blank, at most MAX_QUERY_LENGTH characters, no control
    characters but whitespace."""
    if not text.strip():
        raise InvalidArgument(field, "must not be empty (leave it unset for no query)")
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidArgument(
            field, f"longer than {MAX_QUERY_LENGTH} characters ({len(text)} given)"
        )
    if not "".join(text.split()).isprintable():
        raise InvalidArgument(field, "contains control characters")


def _validate_list_request(
    k: int, exclude_item_ids: frozenset[str], context: Mapping[str, str]
) -> None:
    """What Recommend and SimilarItems share: the list size, exclusions and categories."""
    for key in CATEGORY_FILTERS:
        if key in context and not context_categories(context, key):
            raise InvalidArgument(f"context.{key}", "names no category")
    if not 0 < k <= MAX_K:
        raise InvalidArgument("k", f"must be between 1 and {MAX_K}, got {k}")
    if len(exclude_item_ids) > MAX_EXCLUDED:
        raise InvalidArgument("exclude_item_ids", f"more than {MAX_EXCLUDED} ids")
    for item_id in exclude_item_ids:
        check_id("exclude_item_ids", item_id)


def validate_query(query: RecommendQuery) -> None:
    check_subject("", query.user_id, query.session_id)
    _validate_list_request(query.k, query.exclude_item_ids, query.context)
    if query.query is not None:
        check_text("query", query.query)


def validate_similar(query: SimilarQuery) -> None:
    """One anchor (an item id or a text), an optional subject, the list's rules."""
    if (query.item_id is None) == (query.text is None):
        raise InvalidArgument("item_id", "give either item_id or text")
    if query.item_id is not None:
        check_id("item_id", query.item_id)
    if query.text is not None:
        check_text("text", query.text)
    check_id("user_id", query.user_id, required=False)
    check_id("session_id", query.session_id, required=False)
    _validate_list_request(query.k, query.exclude_item_ids, query.context)


def validate_item_ids(item_ids: Sequence[str]) -> None:
    """The ids of a DeleteItems call: at least one, at most MAX_ITEMS, each well formed."""
    if not item_ids:
        raise InvalidArgument("item_ids", "must not be empty")
    if len(item_ids) > MAX_ITEMS:
        raise InvalidArgument("item_ids", f"at most {MAX_ITEMS} ids per call, got {len(item_ids)}")
    for index, item_id in enumerate(item_ids):
        check_id(f"item_ids[{index}]", item_id)


def validate_events(events: Sequence[FeedbackEvent], now: datetime) -> None:
    if not events:
        raise InvalidArgument("events", "must not be empty")
    if len(events) > MAX_EVENTS:
        raise InvalidArgument("events", f"at most {MAX_EVENTS} events per call, got {len(events)}")
    for index, event in enumerate(events):
        prefix = f"events[{index}]."
        check_id(prefix + "event_id", event.event_id)
        check_subject(prefix, event.user_id, event.session_id)
        check_id(prefix + "item_id", event.item_id)
        check_id(prefix + "recommendation_id", event.recommendation_id, required=False)
        if event.type == EventType.UNSPECIFIED:
            raise InvalidArgument(prefix + "type", "must be set (EVENT_TYPE_UNSPECIFIED given)")
        if event.occurred_at > now + MAX_CLOCK_SKEW:
            raise InvalidArgument(prefix + "timestamp", "is in the future")


def validate_items(items: Sequence[Item]) -> None:
    if not items:
        raise InvalidArgument("items", "must not be empty")
    if len(items) > MAX_ITEMS:
        raise InvalidArgument("items", f"at most {MAX_ITEMS} items per call, got {len(items)}")
    seen: set[str] = set()
    for index, item in enumerate(items):
        prefix = f"items[{index}]."
        check_id(prefix + "item_id", item.item_id)
        if item.item_id in seen:
            raise InvalidArgument(prefix + "item_id", f"duplicate id {item.item_id!r}")
        seen.add(item.item_id)
        _validate_item(prefix, item)


def _validate_item(prefix: str, item: Item) -> None:
    """One item's text, availability window, categories and tags."""
    if not item.title.strip() and not item.description.strip():
        raise InvalidArgument(prefix + "title", "item text is empty (title and description)")
    start, end = item.available_from, item.available_until
    if start and end and end <= start:
        raise InvalidArgument(prefix + "available_until", "is not after available_from")
    if len(item.title) + len(item.description) > MAX_TEXT_LENGTH:
        raise InvalidArgument(prefix + "description", f"text over {MAX_TEXT_LENGTH} characters")
    for name, values in (("categories", item.categories), ("tags", item.tags)):
        for value in values:
            check_id(prefix + name, value)


def validate_variants(variants: Sequence[Variant]) -> None:
    """Names unique and set, shares in [0, 1] summing to 1, overrides valid parameters."""
    if not variants:
        raise InvalidArgument("variants", "an experiment needs at least one variant")
    if len(variants) > MAX_VARIANTS:
        raise InvalidArgument("variants", f"at most {MAX_VARIANTS} variants")
    names = set()
    for index, variant in enumerate(variants):
        prefix = f"variants[{index}]"
        if not variant.name or len(variant.name) > 64 or not variant.name.isprintable():
            raise InvalidArgument(f"{prefix}.name", "must be 1 to 64 printable characters")
        if variant.name in names:
            raise InvalidArgument(f"{prefix}.name", f"duplicate variant {variant.name!r}")
        names.add(variant.name)
        if not 0 <= variant.share <= 1:
            raise InvalidArgument(f"{prefix}.share", "must be between 0 and 1")
        parse_parameters(Parameters().model_dump() | variant.overrides, f"{prefix}.parameters")
    total = sum(v.share for v in variants)
    if abs(total - 1) > SHARE_TOLERANCE:
        raise InvalidArgument("variants", f"shares must add up to 1, they add up to {total:g}")
