"""The dashboard's rollup tables (migration 0004), refreshed incrementally from a watermark.

One pass folds the rows inserted in ``[watermark, until)`` into per-minute, per-item-day,
latency-histogram, ingestion and last-seen rollups, then moves the watermark to ``until``.
Rows are selected by their *insert* time, stamped by the database (impressions and
recommendations.inserted_at, events.received_at), never by client or server clocks, so a
late, back-dated or long-queued row is still folded in exactly once; they are bucketed by
when they happened (served, occurred). ``until`` stays ``lag`` behind now(): a row's insert
time is its transaction's start, and a transaction that started before ``until`` must have
committed by the time the pass reads (impressions are written in sub-second batches,
feedback in one short transaction).

Attribution as docs/ARCHITECTURE.md ("Metric definitions") defines it: a click,
add-to-cart or purchase counts for the impression with the same recommendation_id and item
within 30 minutes (1 minute of clock slack before it), each impression at most once per
event type (``rollup_attributed`` remembers which).

Every replica runs the refresher; a transaction-scoped advisory lock lets one pass run at
a time, and the others skip their turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres.db import translate_outages
from serving.core.domain import EventType

log = logging.getLogger(__name__)

LOCK_KEY = 7_310_002  # pg_advisory_xact_lock: one refresh pass at a time, across replicas
WATERMARK = "dashboard"
ITEM_WINDOWS = "item_windows"
ITEM_WINDOW_DAYS = (1, 7, 30)
"""The catalogue page's windows, in UTC days (today included)."""
ITEM_WINDOWS_EVERY = timedelta(minutes=5)
"""The longest the per-item windows go without a recompute."""
ITEM_WINDOWS_DUTY = 20
"""After a recompute the next waits this many times its duration (at most
ITEM_WINDOWS_EVERY, and a new UTC day starts one at once): on a small catalogue that is
every pass, so the catalogue page counts what was shown as soon as the overview does; on
50,000 items over 30 days (a 3.2 s recompute) about a minute; never more than 1/20 of the
time."""
ITEM_WINDOWS_NEXT = "item_windows_next"
"""The watermark that says when the next recompute of the windows is due."""
HEAD_SHARE = 0.2
"""The head of the catalogue: this share of live items, the most popular (item_stats.
popularity, the decayed engagement the ranker blends in); the rest is the long tail."""
ATTRIBUTION_WINDOW = "30 minutes"
CLOCK_SLACK = "1 minute"
"""How much earlier than its impression's created_at an event may be stamped and still be
attributed: impressions are written in batches after the answer is sent (their created_at
is the insert time), and event timestamps come from client clocks."""
ATTRIBUTED_RETENTION = "1 day"
"""Credited impressions older than this are forgotten: events reach the server within
seconds, retries within minutes; a day is far past any attributable one."""
LAST_SEEN_RETENTION = "8 days"
"""Longer than the longest "active in the last ..." window the dashboard offers."""
LATENCY_BOUNDS_MS = (1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000,
                     2000, 5000)  # fmt: skip
"""Upper bounds of the latency histogram's buckets (the last one is +Infinity)."""

CLICK, ADD_TO_CART, PURCHASE = (
    int(t) for t in (EventType.CLICK, EventType.ADD_TO_CART, EventType.PURCHASE)
)
# events.recommendation_id is free text from clients: only a well-formed UUID is cast
# (inside CASE, so a malformed one can never fail the pass) and joined to impressions.
_UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

_EVENT_COUNTS = sql.SQL(", ").join(
    sql.SQL("count(*) FILTER (WHERE type = {}) AS {}").format(
        sql.Literal(int(t)), sql.Identifier(name)
    )
    for name, t in (
        ("clicks", EventType.CLICK),
        ("likes", EventType.LIKE),
        ("dislikes", EventType.DISLIKE),
        ("skips", EventType.SKIP),
        ("add_to_carts", EventType.ADD_TO_CART),
        ("purchases", EventType.PURCHASE),
    )
)


def _add(table_alias: str, columns: tuple[str, ...]) -> sql.Composed:
    """``SET a = r.a + excluded.a, ...``: rollups only ever add."""
    return sql.SQL(", ").join(
        sql.SQL("{c} = {t}.{c} + excluded.{c}").format(
            c=sql.Identifier(c), t=sql.Identifier(table_alias)
        )
        for c in columns
    )


PASS: tuple[sql.Composed | str, ...] = (
    # Recommendations per minute and variant.
    sql.SQL("""
    INSERT INTO rollup_minute AS r (minute, variant, recommendations, degraded)
    SELECT date_trunc('minute', created_at), variant, count(*), count(*) FILTER (WHERE degraded)
    FROM recommendations
    WHERE inserted_at >= %(lo)s AND inserted_at < %(hi)s
    GROUP BY 1, 2
    ON CONFLICT (minute, variant) DO UPDATE SET {updates}
    """).format(updates=_add("r", ("recommendations", "degraded"))),
    # Recommend latency histogram.
    """
    INSERT INTO rollup_latency AS r (minute, le_ms, recommendations)
    SELECT date_trunc('minute', created_at),
           coalesce((%(bounds)s::real[])[width_bucket(latency_ms, %(bounds)s::real[]) + 1],
                    'Infinity'),
           count(*)
    FROM recommendations
    WHERE inserted_at >= %(lo)s AND inserted_at < %(hi)s
    GROUP BY 1, 2
    ON CONFLICT (minute, le_ms) DO UPDATE SET recommendations = r.recommendations + excluded.recommendations
    """,  # noqa: E501
    # Impressions per minute and variant.
    sql.SQL("""
    INSERT INTO rollup_minute AS r (minute, variant, impressions)
    SELECT date_trunc('minute', i.created_at), rec.variant, count(*)
    FROM impressions AS i JOIN recommendations AS rec USING (recommendation_id)
    WHERE i.inserted_at >= %(lo)s AND i.inserted_at < %(hi)s
    GROUP BY 1, 2
    ON CONFLICT (minute, variant) DO UPDATE SET {updates}
    """).format(updates=_add("r", ("impressions",))),
    # Impressions per item and UTC day.
    sql.SQL("""
    INSERT INTO rollup_item_daily AS r (day, item_id, impressions)
    SELECT (created_at AT TIME ZONE 'UTC')::date, item_id, count(*)
    FROM impressions
    WHERE inserted_at >= %(lo)s AND inserted_at < %(hi)s
    GROUP BY 1, 2
    ON CONFLICT (day, item_id) DO UPDATE SET {updates}
    """).format(updates=_add("r", ("impressions",))),
    # Events by type, per minute of occurrence and variant.
    sql.SQL("""
    INSERT INTO rollup_minute AS r
        (minute, variant, clicks, likes, dislikes, skips, add_to_carts, purchases)
    SELECT date_trunc('minute', occurred_at), coalesce(variant, ''), {event_counts}
    FROM events
    WHERE received_at >= %(lo)s AND received_at < %(hi)s
    GROUP BY 1, 2
    ON CONFLICT (minute, variant) DO UPDATE SET
        {updates}
    """).format(
        event_counts=_EVENT_COUNTS,
        updates=_add("r", ("clicks", "likes", "dislikes", "skips", "add_to_carts", "purchases")),
    ),
    # Ingestion: events per minute of arrival.
    sql.SQL("""
    INSERT INTO rollup_ingest AS r (minute, events)
    SELECT date_trunc('minute', received_at), count(*)
    FROM events
    WHERE received_at >= %(lo)s AND received_at < %(hi)s
    GROUP BY 1
    ON CONFLICT (minute) DO UPDATE SET {updates}
    """).format(updates=_add("r", ("events",))),
    # Attribution: credit each impression once per event type, then count the credits by
    # the impression's minute and variant, and by its item and day.
    sql.SQL("""
    WITH matched AS (
        SELECT DISTINCT i.recommendation_id, i.position, e.type, i.created_at AS shown_at,
                        i.item_id, rec.variant
        FROM events AS e
        JOIN impressions AS i
          ON i.recommendation_id = CASE WHEN e.recommendation_id ~ {uuid_pattern}
                                        THEN e.recommendation_id::uuid END
         AND i.item_id = e.item_id
         AND e.occurred_at >= i.created_at - interval {clock_slack}
         AND e.occurred_at < i.created_at + interval {attribution_window}
        JOIN recommendations AS rec ON rec.recommendation_id = i.recommendation_id
        WHERE e.received_at >= %(lo)s AND e.received_at < %(hi)s
          AND e.type IN ({click}, {add_to_cart}, {purchase})
          AND e.recommendation_id IS NOT NULL
    ),
    fresh AS (
        INSERT INTO rollup_attributed (recommendation_id, position, type, shown_at)
        SELECT recommendation_id, position, type, shown_at FROM matched
        ON CONFLICT DO NOTHING
        RETURNING recommendation_id, position, type
    ),
    credited AS (
        SELECT m.* FROM matched AS m JOIN fresh USING (recommendation_id, position, type)
    ),
    per_minute AS (
        INSERT INTO rollup_minute AS r
            (minute, variant, attributed_clicks, attributed_add_to_carts, attributed_purchases)
        SELECT date_trunc('minute', shown_at), variant,
               count(*) FILTER (WHERE type = {click}),
               count(*) FILTER (WHERE type = {add_to_cart}),
               count(*) FILTER (WHERE type = {purchase})
        FROM credited
        GROUP BY 1, 2
        ON CONFLICT (minute, variant) DO UPDATE SET {updates}
    )
    INSERT INTO rollup_item_daily AS r (day, item_id, attributed_clicks, attributed_purchases)
    SELECT (shown_at AT TIME ZONE 'UTC')::date, item_id,
           count(*) FILTER (WHERE type = {click}), count(*) FILTER (WHERE type = {purchase})
    FROM credited
    WHERE type IN ({click}, {purchase})
    GROUP BY 1, 2
    ON CONFLICT (day, item_id) DO UPDATE SET
        {updates2}
    """).format(
        uuid_pattern=sql.Literal(_UUID),
        clock_slack=sql.Literal(CLOCK_SLACK),
        attribution_window=sql.Literal(ATTRIBUTION_WINDOW),
        click=sql.Literal(CLICK),
        add_to_cart=sql.Literal(ADD_TO_CART),
        purchase=sql.Literal(PURCHASE),
        updates=_add("r", ("attributed_clicks", "attributed_add_to_carts", "attributed_purchases")),
        updates2=_add("r", ("attributed_clicks", "attributed_purchases")),
    ),
    # Last seen: users (anonymous visitors as 'session:<id>', like user_state) and sessions.
    """
    INSERT INTO rollup_last_seen AS r (kind, key, last_seen_at)
    SELECT kind, md5(subject)::uuid, max(seen) FROM (
        SELECT 'u' AS kind,
               CASE WHEN user_id <> '' THEN user_id ELSE 'session:' || session_id END AS subject,
               occurred_at AS seen
        FROM events WHERE received_at >= %(lo)s AND received_at < %(hi)s
        UNION ALL
        SELECT 's', session_id, occurred_at
        FROM events
        WHERE received_at >= %(lo)s AND received_at < %(hi)s AND session_id <> ''
        UNION ALL
        SELECT 'u', CASE WHEN user_id <> '' THEN user_id ELSE 'session:' || session_id END,
               created_at
        FROM recommendations WHERE inserted_at >= %(lo)s AND inserted_at < %(hi)s
        UNION ALL
        SELECT 's', session_id, created_at
        FROM recommendations
        WHERE inserted_at >= %(lo)s AND inserted_at < %(hi)s AND session_id <> ''
    ) AS seen
    GROUP BY 1, 2
    ON CONFLICT (kind, key) DO UPDATE SET
        last_seen_at = greatest(r.last_seen_at, excluded.last_seen_at)
    """,
    sql.SQL("DELETE FROM rollup_attributed WHERE shown_at < %(hi)s - interval {retention}").format(
        retention=sql.Literal(ATTRIBUTED_RETENTION)
    ),
    sql.SQL(
        "DELETE FROM rollup_last_seen WHERE last_seen_at < %(hi)s - interval {retention}"
    ).format(retention=sql.Literal(LAST_SEEN_RETENTION)),
    """
    INSERT INTO rollup_watermarks (name, watermark) VALUES (%(name)s, %(hi)s)
    ON CONFLICT (name) DO UPDATE SET watermark = excluded.watermark
    """,
)

# Where a pass starts: the watermark, or before anything was written (first pass).
_START = """
SELECT coalesce(
    (SELECT watermark FROM rollup_watermarks WHERE name = %(name)s),
    least((SELECT min(inserted_at) FROM recommendations),
          (SELECT min(inserted_at) FROM impressions),
          (SELECT min(received_at) FROM events)),
    now() - make_interval(secs => %(lag_s)s)
),
now() - make_interval(secs => %(lag_s)s)
"""


# Per-item window totals, recomputed from the daily rollup in one scan of its last 30 days.
_ITEM_WINDOWS = (
    "DELETE FROM rollup_item_window",
    """
    WITH totals AS (
        SELECT w.days, d.item_id, sum(d.impressions) AS impressions,
               sum(d.attributed_clicks) AS clicks, sum(d.attributed_purchases) AS purchases
        FROM rollup_item_daily AS d
        JOIN unnest(%(days)s::smallint[]) AS w(days)
          ON d.day > (%(now)s AT TIME ZONE 'UTC')::date - w.days
        WHERE d.day > (%(now)s AT TIME ZONE 'UTC')::date - %(longest)s
        GROUP BY 1, 2
    ),
    head AS (
        SELECT s.item_id FROM item_stats AS s JOIN items AS i USING (item_id)
        WHERE i.deleted_at IS NULL
        ORDER BY s.popularity DESC
        LIMIT (SELECT ceil(%(head_share)s * count(*)) FROM items WHERE deleted_at IS NULL)
    )
    INSERT INTO rollup_item_window (days, item_id, category, item_created_at, head,
                                    impressions, attributed_clicks, attributed_purchases)
    SELECT t.days, t.item_id, coalesce(i.categories[1], ''), i.created_at,
           t.item_id IN (SELECT item_id FROM head), t.impressions, t.clicks, t.purchases
    FROM totals AS t JOIN items AS i USING (item_id)
    """,
    # When it was computed, and when the next is due (clock_timestamp() - now(): this
    # transaction's duration so far, i.e. the recompute's cost).
    """
    INSERT INTO rollup_watermarks (name, watermark)
    VALUES (%(name)s, %(now)s),
           (%(due)s, %(now)s + least(%(every)s, %(duty)s * (clock_timestamp() - %(now)s)))
    ON CONFLICT (name) DO UPDATE SET watermark = excluded.watermark
    """,
)

_ITEM_WINDOWS_DUE = """
SELECT now(), coalesce(
    (SELECT least(due.watermark, done.watermark + %(every)s) <= now()
            OR (done.watermark AT TIME ZONE 'UTC')::date < (now() AT TIME ZONE 'UTC')::date
     FROM rollup_watermarks AS done LEFT JOIN rollup_watermarks AS due ON due.name = %(due)s
     WHERE done.name = %(name)s),
    true)
"""


@dataclass(frozen=True)
class Pass:
    """What one refresh pass covered: ``[start, end)``; ``caught_up`` when ``end`` is
    ``lag`` behind now (nothing older is left to fold in)."""

    start: datetime
    end: datetime
    caught_up: bool


async def _lock(conn: AsyncConnection[Any], wait: bool) -> bool:
    """Take the refresh lock for this transaction; False when another holds it (and not
    ``wait``)."""
    if wait:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        return True
    locked = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,))
    row = await locked.fetchone()
    return row is not None and bool(row[0])


async def refresh_once(
    conn: AsyncConnection[Any],
    *,
    lag: timedelta = timedelta(seconds=10),
    max_span: timedelta = timedelta(hours=1),
    wait: bool = False,
) -> Pass | None:
    """One pass over at most ``max_span`` of inserts, in one transaction. Returns None when
    another pass holds the lock (unless ``wait``, which waits for it)."""
    async with conn.transaction():
        if not await _lock(conn, wait):
            return None
        params: dict[str, Any] = {"name": WATERMARK, "lag_s": lag.total_seconds()}
        start_row = await (await conn.execute(_START, params)).fetchone()
        assert start_row is not None
        start, now = start_row
        end = min(now, start + max_span)
        if end <= start:
            return Pass(start, start, caught_up=True)
        params |= {"lo": start, "hi": end, "bounds": [float(b) for b in LATENCY_BOUNDS_MS]}
        for statement in PASS:
            await conn.execute(statement, params)
    return Pass(start, end, caught_up=end >= now)


async def refresh_item_windows(
    conn: AsyncConnection[Any], every: timedelta = ITEM_WINDOWS_EVERY
) -> bool:
    """Recompute the per-item window totals if they are due (ITEM_WINDOWS_DUTY times the
    last recompute's duration ago, ``every`` ago, or on an earlier UTC day); whether it
    did."""
    async with conn.transaction():
        if not await _lock(conn, wait=False):
            return False
        params: dict[str, Any] = {"name": ITEM_WINDOWS, "due": ITEM_WINDOWS_NEXT, "every": every}
        due = await conn.execute(_ITEM_WINDOWS_DUE, params)
        row = await due.fetchone()
        if row is None or not row[1]:
            return False
        now = row[0]
        params |= {
            "duty": ITEM_WINDOWS_DUTY,
            "now": now,
            "days": list(ITEM_WINDOW_DAYS),
            "longest": max(ITEM_WINDOW_DAYS),
            "head_share": HEAD_SHARE,
        }
        for statement in _ITEM_WINDOWS:
            await conn.execute(statement, params)
    return True


async def catch_up(
    conn: AsyncConnection[Any], windows_every: timedelta = ITEM_WINDOWS_EVERY, **options: Any
) -> list[Pass]:
    """Passes until the rollups are ``lag`` behind now, then the per-item windows when due
    (see :func:`refresh_item_windows`). Returns the passes (none when another replica is at
    it)."""
    passes: list[Pass] = []
    while True:
        done = await refresh_once(conn, **options)
        if done is None:
            return passes
        passes.append(done)
        if done.caught_up:
            break
    await refresh_item_windows(conn, windows_every)
    return passes


class RollupRefresher:
    """Runs :func:`catch_up` every ``interval_s`` in the background of a server process."""

    def __init__(self, pool: AsyncConnectionPool, interval_s: float) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rollup-refresh")

    async def _run(self) -> None:
        while True:
            try:
                async with self._pool.connection() as conn:
                    await catch_up(conn)
            except Exception:
                # The dashboard's figures lag until the next pass; serving is unaffected.
                log.exception("rollup refresh failed; retrying in %.0fs", self._interval_s)
            await asyncio.sleep(self._interval_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def forget_user(pool: AsyncConnectionPool, user_id: str) -> None:
    """Delete the dashboard's traces of ``user_id``: the digest-keyed last-seen rows of the
    user and their sessions, and their attributed impressions. Reads the user's sessions
    and lists, so it runs before those are deleted (and again, harmlessly, on a retry)."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT DISTINCT session_id FROM events WHERE user_id = %s AND session_id <> ''",
            (user_id,),
        )
        sessions = sorted(row[0] for row in await cur.fetchall())
        await conn.execute(
            "DELETE FROM rollup_attributed WHERE recommendation_id IN"
            " (SELECT recommendation_id FROM recommendations WHERE user_id = %s)",
            (user_id,),
        )
        await conn.execute(
            "DELETE FROM rollup_last_seen WHERE (kind = 'u' AND key = md5(%s)::uuid)"
            " OR (kind = 's' AND key IN (SELECT md5(s)::uuid FROM unnest(%s::text[]) AS s))",
            (user_id, sessions),
        )


class PostgresRollups:
    """The DashboardTraces port on PostgreSQL."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @translate_outages
    async def forget_user(self, user_id: str) -> None:
        await forget_user(self._pool, user_id)
