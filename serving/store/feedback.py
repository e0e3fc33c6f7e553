"""Feedback: events, the per-user state they update, item statistics, and forgetting.

Everything one LogFeedback call writes commits in a single transaction, so an
acknowledged call is durable and a rejected one leaves nothing behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from serving.domain import EventType, FeedbackEvent, UserState, subject_key
from serving.errors import InvalidArgument
from serving.store.items import existing_item_ids

MAX_HISTORY = 200
"""Interactions kept per user; the upper bound of the history_length parameter."""

POPULARITY_WEIGHT = {
    EventType.CLICK: 1.0,
    EventType.LIKE: 2.0,
    EventType.ADD_TO_CART: 3.0,
    EventType.PURCHASE: 5.0,
}
STAT_COLUMN = {
    EventType.CLICK: "clicks",
    EventType.LIKE: "likes",
    EventType.DISLIKE: "dislikes",
    EventType.SKIP: "skips",
    EventType.ADD_TO_CART: "add_to_carts",
    EventType.PURCHASE: "purchases",
}


@dataclass(frozen=True)
class FeedbackResult:
    accepted: int
    duplicates: int


UPSERT_STATE = f"""
INSERT INTO user_state AS s (subject, item_ids, event_types, disliked)
VALUES (%s, %s, %s, %s)
ON CONFLICT (subject) DO UPDATE SET
    item_ids = (s.item_ids || EXCLUDED.item_ids)[
        greatest(1, cardinality(s.item_ids) + cardinality(EXCLUDED.item_ids) - {MAX_HISTORY} + 1):],
    event_types = (s.event_types || EXCLUDED.event_types)[
        greatest(1, cardinality(s.event_types) + cardinality(EXCLUDED.event_types)
                    - {MAX_HISTORY} + 1):],
    disliked = ARRAY(SELECT DISTINCT unnest(s.disliked || EXCLUDED.disliked)),
    updated_at = now()
"""

UPDATE_STATS = """
UPDATE item_stats SET
    clicks = clicks + %(clicks)s, likes = likes + %(likes)s, dislikes = dislikes + %(dislikes)s,
    skips = skips + %(skips)s, add_to_carts = add_to_carts + %(add_to_carts)s,
    purchases = purchases + %(purchases)s,
    popularity = popularity
        * power(0.5, extract(epoch FROM now() - popularity_at) / 3600.0 / %(half_life)s)
        + %(weight)s,
    popularity_at = now(),
    updated_at = clock_timestamp()
WHERE item_id = %(item_id)s
"""


async def record_feedback(
    pool: AsyncConnectionPool,
    events: Sequence[FeedbackEvent],
    popularity_half_life_hours: float,
    variant_of: Callable[[str], str | None] = lambda subject: None,
) -> FeedbackResult:
    """Store new events exactly once and fold them into user state and item statistics.

    Raises InvalidArgument (and writes nothing) when an event names an unknown item.
    """
    async with pool.connection() as conn, conn.transaction():
        known = await existing_item_ids(conn, sorted({e.item_id for e in events}))
        for index, event in enumerate(events):
            if event.item_id not in known:
                raise InvalidArgument(f"events[{index}].item_id", f"unknown item {event.item_id!r}")
        fresh = await _claim_event_ids(conn, events)
        if fresh:
            await _insert_events(conn, fresh, variant_of)
            await _update_users(conn, fresh)
            await _update_item_stats(conn, fresh, popularity_half_life_hours)
        return FeedbackResult(accepted=len(fresh), duplicates=len(events) - len(fresh))


async def _claim_event_ids(
    conn: AsyncConnection, events: Sequence[FeedbackEvent]
) -> list[FeedbackEvent]:
    """The events whose ids were not seen before (first occurrence within the call wins)."""
    cur = await conn.execute(
        "INSERT INTO event_ids (event_id, occurred_at)"
        " SELECT * FROM unnest(%s::text[], %s::timestamptz[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        ([e.event_id for e in events], [e.occurred_at for e in events]),
    )
    claimed = {row[0] for row in await cur.fetchall()}
    fresh = []
    for event in events:
        if event.event_id in claimed:
            claimed.discard(event.event_id)
            fresh.append(event)
    return fresh


async def _insert_events(
    conn: AsyncConnection,
    events: Sequence[FeedbackEvent],
    variant_of: Callable[[str], str | None],
) -> None:
    columns = (
        "event_id, user_id, session_id, item_id, type, value, recommendation_id, occurred_at,"
        " variant"
    )
    async with conn.cursor().copy(f"COPY events ({columns}) FROM STDIN") as copy:
        for e in events:
            await copy.write_row(
                (
                    e.event_id,
                    e.user_id,
                    e.session_id,
                    e.item_id,
                    int(e.type),
                    e.value,
                    e.recommendation_id or None,
                    e.occurred_at,
                    variant_of(e.subject),
                )
            )


async def _update_users(conn: AsyncConnection, events: Sequence[FeedbackEvent]) -> None:
    user_ids = sorted({e.user_id for e in events if e.user_id})
    if user_ids:
        await conn.execute(
            "INSERT INTO users (user_id) SELECT unnest(%s::text[])"
            " ON CONFLICT (user_id) DO UPDATE SET last_seen_at = now()",
            (user_ids,),
        )
    by_subject: dict[str, list[FeedbackEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.occurred_at):
        by_subject[event.subject].append(event)
    rows = [
        (
            subject,
            [e.item_id for e in evs][-MAX_HISTORY:],
            [int(e.type) for e in evs][-MAX_HISTORY:],
            sorted({e.item_id for e in evs if e.type == EventType.DISLIKE}),
        )
        for subject, evs in sorted(by_subject.items())  # fixed lock order: no deadlocks
    ]
    async with conn.cursor() as cur:
        await cur.executemany(UPSERT_STATE, rows)


async def _update_item_stats(
    conn: AsyncConnection, events: Sequence[FeedbackEvent], half_life_hours: float
) -> None:
    per_item: dict[str, dict[str, float]] = {}
    for event in events:
        row = per_item.setdefault(
            event.item_id,
            {column: 0 for column in STAT_COLUMN.values()} | {"weight": 0.0},
        )
        row[STAT_COLUMN[event.type]] += 1
        row["weight"] += POPULARITY_WEIGHT.get(event.type, 0.0)
    params = [
        row | {"item_id": item_id, "half_life": half_life_hours}
        for item_id, row in sorted(per_item.items())
    ]
    async with conn.cursor() as cur:
        await cur.executemany(UPDATE_STATS, params)


async def load_user_state(pool: AsyncConnectionPool, subject: str) -> UserState:
    """The recent interactions of a user or anonymous session (empty when unknown)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT item_ids, event_types, disliked FROM user_state WHERE subject = %s",
            (subject,),
        )
        row = await cur.fetchone()
    if row is None:
        return UserState()
    item_ids, event_types, disliked = row
    return UserState(
        item_ids=tuple(item_ids),
        event_types=tuple(EventType(t) for t in event_types),
        disliked=frozenset(disliked),
    )


async def forget_user(pool: AsyncConnectionPool, user_id: str) -> int:
    """Delete every row about ``user_id``; returns the number of events deleted."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "DELETE FROM events WHERE user_id = %s RETURNING event_id", (user_id,)
        )
        event_ids = [row[0] for row in await cur.fetchall()]
        await conn.execute("DELETE FROM event_ids WHERE event_id = ANY(%s)", (event_ids,))
        await conn.execute("DELETE FROM user_state WHERE subject = %s", (user_id,))
        await conn.execute("DELETE FROM recommendations WHERE user_id = %s", (user_id,))
        await conn.execute("DELETE FROM users WHERE user_id = %s", (user_id,))
    return len(event_ids)


async def merge_session(pool: AsyncConnectionPool, session_id: str, user_id: str) -> int:
    """Fold an anonymous session's state into the user's and attribute its events to them;
    returns the number of events re-attributed."""
    session = subject_key("", session_id)
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "DELETE FROM user_state WHERE subject = %s RETURNING item_ids, event_types, disliked",
            (session,),
        )
        row = await cur.fetchone()
        if row is not None:
            await conn.execute(
                "INSERT INTO users (user_id) VALUES (%s)"
                " ON CONFLICT (user_id) DO UPDATE SET last_seen_at = now()",
                (user_id,),
            )
            await conn.execute(UPSERT_STATE, (user_id, *row))
        cur = await conn.execute(
            "UPDATE events SET user_id = %s WHERE session_id = %s AND user_id = ''",
            (user_id, session_id),
        )
        return cur.rowcount
