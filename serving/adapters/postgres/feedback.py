"""Feedback: events, the per-user state they update, item statistics, and forgetting.

Everything one LogFeedback call writes commits in a single transaction, so an
acknowledged call is durable and a rejected one leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres.db import translate_outages
from serving.adapters.postgres.items import existing_item_ids
from serving.core.domain import EventType, FeedbackEvent, FeedbackResult, UserState, subject_key
from serving.core.errors import InvalidArgument

MAX_HISTORY = 200
"""Interactions kept per user; the upper bound of the history_length parameter."""

STATE_WAIT_S = 0.5
"""Longest wait for a pooled connection to read a user's state: while the database is
down the pool has none to give, and Recommend must answer (without history, degraded)
inside its deadline instead of queueing for the pool's default 30 s."""
WRITE_WAIT_S = 3.0
"""Longest wait for a connection to write; past it the call is UNAVAILABLE and the
client retries (with the same event ids, so nothing is counted twice). Inside the SDK's
5 s deadline, so a caller sees UNAVAILABLE (retried), not DEADLINE_EXCEEDED; long enough
that a burst of load queues instead of failing."""

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


EVENT_COLUMNS = sql.SQL(", ").join(
    map(
        sql.Identifier,
        (
            "event_id",
            "user_id",
            "session_id",
            "item_id",
            "type",
            "value",
            "recommendation_id",
            "occurred_at",
            "variant",
        ),
    )
)
"""The columns LogFeedback copies, in EVENT_COLUMN_TYPES' order."""

MERGE_STATE = sql.SQL("""
ON CONFLICT (subject) DO UPDATE SET
    item_ids = (s.item_ids || EXCLUDED.item_ids)[
        greatest(1, cardinality(s.item_ids) + cardinality(EXCLUDED.item_ids) - {max_history} + 1):],
    event_types = (s.event_types || EXCLUDED.event_types)[
        greatest(1, cardinality(s.event_types) + cardinality(EXCLUDED.event_types)
                    - {max_history} + 1):],
    disliked = ARRAY(SELECT DISTINCT unnest(s.disliked || EXCLUDED.disliked)),
    updated_at = now()
""").format(max_history=sql.Literal(MAX_HISTORY))
"""Appends new interactions to a subject's state, keeping the last MAX_HISTORY."""

UPSERT_STATE = (
    sql.SQL(
        "INSERT INTO user_state AS s (subject, item_ids, event_types, disliked)"
        " VALUES (%s, %s, %s, %s)"
    )
    + MERGE_STATE
)

# One statement for the whole batch: the events arrive as parallel arrays in time order
# and are grouped per subject in SQL. Subjects are inserted in sorted order, so concurrent
# batches lock user_state rows in the same order and cannot deadlock.
APPEND_STATES = (
    sql.SQL("""
INSERT INTO user_state AS s (subject, item_ids, event_types, disliked)
SELECT subject,
       (array_agg(item_id ORDER BY n))[greatest(1, count(*) - {max_history} + 1):],
       (array_agg(type ORDER BY n))[greatest(1, count(*) - {max_history} + 1):],
       coalesce(array_agg(DISTINCT item_id) FILTER (WHERE type = {dislike}), '{{}}')
FROM unnest(%s::text[], %s::text[], %s::smallint[]) WITH ORDINALITY AS e(subject, item_id, type, n)
GROUP BY subject
ORDER BY subject
""").format(max_history=sql.Literal(MAX_HISTORY), dislike=sql.Literal(int(EventType.DISLIKE)))
    + MERGE_STATE
)

# Per-item deltas as parallel arrays, applied in one statement. The rows are locked first
# in item order (LOCK_STATS): the join's own order is the planner's choice, and two batches
# taking the same rows in different orders would deadlock. d's counts follow STAT_COLUMN.
LOCK_STATS = (
    "SELECT 1 FROM item_stats WHERE item_id = ANY(%s::text[]) ORDER BY item_id FOR NO KEY UPDATE"
)
UPDATE_STATS = """
UPDATE item_stats AS s SET
    clicks = s.clicks + d.clicks, likes = s.likes + d.likes, dislikes = s.dislikes + d.dislikes,
    skips = s.skips + d.skips, add_to_carts = s.add_to_carts + d.add_to_carts,
    purchases = s.purchases + d.purchases,
    popularity = s.popularity
        * power(0.5, extract(epoch FROM now() - s.popularity_at) / 3600.0 / %s)
        + d.weight,
    popularity_at = now(),
    updated_at = clock_timestamp()
FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
            %s::bigint[], %s::float8[])
    AS d(item_id, clicks, likes, dislikes, skips, add_to_carts, purchases, weight)
WHERE s.item_id = d.item_id
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
    async with pool.connection(WRITE_WAIT_S) as conn, conn.transaction():
        known = await existing_item_ids(conn, sorted({e.item_id for e in events}))
        for index, event in enumerate(events):
            if event.item_id not in known:
                raise InvalidArgument(f"events[{index}].item_id", f"unknown item {event.item_id!r}")
        fresh = await _claim_event_ids(conn, events)
        if fresh:
            await _insert_events(conn, fresh, variant_of)
            # The state and statistics statements need no answer before the next one is
            # sent: one round trip for all of them.
            async with conn.pipeline():
                await _update_users(conn, fresh)
                await _update_item_stats(conn, fresh, popularity_half_life_hours)
        return FeedbackResult(accepted=len(fresh), duplicates=len(events) - len(fresh))


async def _claim_event_ids(
    conn: AsyncConnection, events: Sequence[FeedbackEvent]
) -> list[FeedbackEvent]:
    """The events whose ids were not seen before (first occurrence within the call wins)."""
    by_id = sorted(events, key=lambda e: e.event_id)
    cur = await conn.execute(
        "INSERT INTO event_ids (event_id, occurred_at)"
        " SELECT * FROM unnest(%s::text[], %s::timestamptz[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        # Claimed in id order: two concurrent calls sharing ids (a retry racing its
        # original) then wait on each other instead of deadlocking.
        ([e.event_id for e in by_id], [e.occurred_at for e in by_id]),
    )
    claimed = {row[0] for row in await cur.fetchall()}
    fresh = []
    for event in events:
        if event.event_id in claimed:
            claimed.discard(event.event_id)
            fresh.append(event)
    return fresh


EVENT_COLUMN_TYPES = (
    "text",
    "text",
    "text",
    "text",
    "int2",
    "float4",
    "text",
    "timestamptz",
    "text",
)


async def _insert_events(
    conn: AsyncConnection,
    events: Sequence[FeedbackEvent],
    variant_of: Callable[[str], str | None],
) -> None:
    # Binary COPY: the server skips parsing text (timestamps above all).
    copy_events = sql.SQL("COPY events ({}) FROM STDIN (FORMAT BINARY)").format(EVENT_COLUMNS)
    async with conn.cursor().copy(copy_events) as copy:
        copy.set_types(EVENT_COLUMN_TYPES)
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
            # Touched at most once a minute: an update per event would rewrite the row of
            # every active user in every batch, for a time nothing needs to the second.
            " ON CONFLICT (user_id) DO UPDATE SET last_seen_at = now()"
            " WHERE users.last_seen_at < now() - interval '1 minute'",
            (user_ids,),
        )
    ordered = sorted(events, key=lambda e: e.occurred_at)
    await conn.execute(
        APPEND_STATES,
        (
            [e.subject for e in ordered],
            [e.item_id for e in ordered],
            [int(e.type) for e in ordered],
        ),
    )


async def _update_item_stats(
    conn: AsyncConnection, events: Sequence[FeedbackEvent], half_life_hours: float
) -> None:
    per_item: dict[str, list[float]] = {}
    columns = list(STAT_COLUMN.values())
    for event in events:
        row = per_item.setdefault(event.item_id, [0.0] * (len(columns) + 1))
        row[columns.index(STAT_COLUMN[event.type])] += 1
        row[-1] += POPULARITY_WEIGHT.get(event.type, 0.0)
    item_ids = sorted(per_item)
    counts = [[int(per_item[i][c]) for i in item_ids] for c in range(len(columns))]
    weights = [per_item[i][-1] for i in item_ids]
    await conn.execute(LOCK_STATS, (item_ids,))
    await conn.execute(UPDATE_STATS, (half_life_hours, item_ids, *counts, weights))


SESSION_PREFIX = subject_key("", "")
EARLIER_ITEMS = {
    False: "SELECT DISTINCT item_id FROM events WHERE user_id = %s",
    True: "SELECT DISTINCT item_id FROM events WHERE session_id = %s AND user_id = ''",
}
"""Every item a user (or an anonymous session) interacted with, by the events indexes."""


async def load_user_state(pool: AsyncConnectionPool, subject: str) -> UserState:
    """The recent interactions of a user or anonymous session (empty when unknown).

    Once the kept history is full, older interactions are only in the events: their items
    are read from there (``earlier_items``), so a seen item stays seen however long ago,
    as in the offline protocol. Users under MAX_HISTORY interactions pay one read only.
    """
    async with pool.connection(STATE_WAIT_S) as conn:
        cur = await conn.execute(
            "SELECT item_ids, event_types, disliked FROM user_state WHERE subject = %s",
            (subject,),
        )
        row = await cur.fetchone()
        if row is None:
            return UserState()
        item_ids, event_types, disliked = row
        earlier: frozenset[str] = frozenset()
        if len(item_ids) >= MAX_HISTORY:
            session = subject.startswith(SESSION_PREFIX)
            key = subject.removeprefix(SESSION_PREFIX) if session else subject
            cur = await conn.execute(EARLIER_ITEMS[session], (key,))
            earlier = frozenset(r[0] for r in await cur.fetchall()) - frozenset(item_ids)
    return UserState(
        item_ids=tuple(item_ids),
        event_types=tuple(EventType(t) for t in event_types),
        disliked=frozenset(disliked),
        earlier_items=earlier,
    )


async def forget_user(pool: AsyncConnectionPool, user_id: str) -> int:
    """Delete the feedback aggregate's rows about ``user_id`` in one transaction: events
    and their claimed ids, state, the user, recommendations (impressions cascade). Returns
    the number of events deleted. (The dashboard's traces are the rollups' to delete:
    ``serving.app.feedback.FeedbackService.forget_user`` orchestrates both.)"""
    async with pool.connection(WRITE_WAIT_S) as conn, conn.transaction():
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
    async with pool.connection(WRITE_WAIT_S) as conn, conn.transaction():
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


class PostgresFeedback:
    """The UserStates and FeedbackLog ports on PostgreSQL."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @translate_outages
    async def load_user_state(self, subject: str) -> UserState:
        return await load_user_state(self._pool, subject)

    @translate_outages
    async def record_feedback(
        self,
        events: Sequence[FeedbackEvent],
        popularity_half_life_hours: float,
        variant_of: Callable[[str], str | None],
    ) -> FeedbackResult:
        return await record_feedback(self._pool, events, popularity_half_life_hours, variant_of)

    @translate_outages
    async def forget_user(self, user_id: str) -> int:
        return await forget_user(self._pool, user_id)

    @translate_outages
    async def merge_session(self, session_id: str, user_id: str) -> int:
        return await merge_session(self._pool, session_id, user_id)
