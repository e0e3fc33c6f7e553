"""Logged recommendations as off-policy evaluation needs them: what was shown, with which
propensity, what was clicked, and the user's state just before the list was served."""

from __future__ import annotations

from datetime import datetime

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres.db import translate_outages
from serving.core.domain import EventType, LoggedList, UserState

# The subject's events before the list: by user id, or by session for anonymous lists
# (each branch can use its own index).
_SUBJECT_EVENTS = """
    SELECT e.item_id, e.type, e.occurred_at FROM events e
    WHERE r.user_id <> '' AND e.user_id = r.user_id AND e.occurred_at < r.created_at
    UNION ALL
    SELECT e.item_id, e.type, e.occurred_at FROM events e
    WHERE r.user_id = '' AND e.user_id = '' AND e.session_id = r.session_id
      AND e.occurred_at < r.created_at
"""

LOGGED_LISTS = sql.SQL("""
WITH r AS (
    SELECT recommendation_id, user_id, session_id, created_at FROM recommendations
    WHERE created_at >= %(since)s AND NOT degraded
    ORDER BY created_at DESC LIMIT %(limit)s
)
SELECT r.recommendation_id::text, shown.item_ids, shown.propensities,
       coalesce(clicked.item_ids, '{{}}'), coalesce(history.item_ids, '{{}}'),
       coalesce(history.types, '{{}}'), coalesce(disliked.item_ids, '{{}}')
FROM r
JOIN LATERAL (
    SELECT array_agg(item_id ORDER BY position) AS item_ids,
           array_agg(propensity ORDER BY position) AS propensities
    FROM impressions i WHERE i.recommendation_id = r.recommendation_id
) shown ON shown.item_ids IS NOT NULL
LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT item_id) AS item_ids FROM events e
    WHERE e.recommendation_id = r.recommendation_id::text AND e.type = {click}
) clicked ON true
LEFT JOIN LATERAL (
    SELECT array_agg(item_id ORDER BY occurred_at) AS item_ids,
           array_agg(type ORDER BY occurred_at) AS types
    FROM ({subject_events} ORDER BY occurred_at DESC LIMIT %(history)s) recent
) history ON true
LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT item_id) AS item_ids
    FROM ({subject_events}) earlier WHERE type = {dislike}
) disliked ON true
ORDER BY r.created_at DESC
""").format(
    click=sql.Literal(int(EventType.CLICK)),
    subject_events=sql.SQL(_SUBJECT_EVENTS),
    dislike=sql.Literal(int(EventType.DISLIKE)),
)


async def logged_lists(
    pool: AsyncConnectionPool, since: datetime, limit: int, history: int
) -> list[LoggedList]:
    """The newest ``limit`` lists served since ``since`` by the full policy (degraded
    fallbacks left out), each with the last ``history`` interactions before it."""
    async with pool.connection() as conn:
        cur = await conn.execute(LOGGED_LISTS, {"since": since, "limit": limit, "history": history})
        rows = await cur.fetchall()
    return [
        LoggedList(
            recommendation_id=recommendation_id,
            state=UserState(
                tuple(history_ids), tuple(EventType(t) for t in types), frozenset(disliked)
            ),
            item_ids=tuple(item_ids),
            propensities=tuple(propensities),
            clicked=frozenset(clicked),
        )
        for (
            recommendation_id,
            item_ids,
            propensities,
            clicked,
            history_ids,
            types,
            disliked,
        ) in rows
    ]


async def recent_users(pool: AsyncConnectionPool, count: int) -> list[str]:
    """Up to ``count`` distinct signed-in users among the newest recommendations."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT user_id FROM (SELECT user_id, created_at FROM recommendations"
            " ORDER BY created_at DESC LIMIT %s) newest WHERE user_id <> ''"
            " GROUP BY user_id ORDER BY max(created_at) DESC LIMIT %s",
            (count * 50, count),
        )
        return [user_id for (user_id,) in await cur.fetchall()]


class PostgresLoggedLists:
    """The LoggedLists port on PostgreSQL."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @translate_outages
    async def logged_lists(self, since: datetime, limit: int, history: int) -> list[LoggedList]:
        return await logged_lists(self._pool, since, limit, history)

    @translate_outages
    async def recent_users(self, count: int) -> list[str]:
        return await recent_users(self._pool, count)
