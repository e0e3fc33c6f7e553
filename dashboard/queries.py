"""The dashboard's reads: each takes an open psycopg connection, returns plain data.

Metric definitions follow DESIGN.md: a click (or purchase) is attributed to the
impression with the same recommendation_id and item within 30 minutes, and
CTR = attributed clicks / impressions. An impression counts as clicked once however
often it was clicked, so CTR stays within [0, 1].

Every query filters on an indexed timestamp (impressions.created_at,
events.occurred_at, recommendations.created_at) relative to the database's ``now()``,
so the dashboard host's clock does not matter.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import psycopg

Connection = psycopg.Connection[Any]

WINDOWS: dict[str, int] = {"Last 15 min": 15 * 60, "Last hour": 60 * 60, "Last 24 h": 24 * 3600}
"""Selectable windows, label -> seconds."""

ATTRIBUTION_WINDOW = "30 minutes"
CLOCK_SLACK = "1 minute"
"""How much earlier than its impression's created_at an event may be stamped and still be
attributed: impressions are written in batches after the answer is sent (their created_at
is the insert time), and event timestamps come from client clocks."""

CLICK, LIKE, PURCHASE = 1, 2, 6  # serving.domain.EventType values, as stored

# events.recommendation_id is free text from clients: only a well-formed UUID is cast
# (inside CASE, so a malformed one can never fail the query) and joined to impressions.
_UUID = "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'"

_PER_MINUTE = f"""
WITH bounds AS (
    SELECT now() - make_interval(secs => %(window_s)s) AS since
),
minutes AS (
    SELECT generate_series(
        date_trunc('minute', (SELECT since FROM bounds)), date_trunc('minute', now()),
        interval '1 minute'
    ) AS minute
),
shown AS (
    SELECT date_trunc('minute', created_at) AS minute, count(*) AS impressions
    FROM impressions
    WHERE created_at >= (SELECT since FROM bounds)
    GROUP BY 1
),
attributed AS (
    SELECT date_trunc('minute', i.created_at) AS minute,
           count(DISTINCT (i.recommendation_id, i.position)) FILTER (WHERE e.type = {CLICK})
               AS clicks,
           count(DISTINCT (i.recommendation_id, i.position)) FILTER (WHERE e.type = {PURCHASE})
               AS purchases
    FROM events AS e
    JOIN impressions AS i
      ON i.recommendation_id = CASE WHEN e.recommendation_id ~ {_UUID}
                                    THEN e.recommendation_id::uuid END
     AND i.item_id = e.item_id
     AND e.occurred_at >= i.created_at - interval '{CLOCK_SLACK}'
     AND e.occurred_at < i.created_at + interval '{ATTRIBUTION_WINDOW}'
    WHERE e.type IN ({CLICK}, {PURCHASE})
      AND e.recommendation_id IS NOT NULL
      AND e.occurred_at >= (SELECT since FROM bounds) - interval '{CLOCK_SLACK}'
      AND i.created_at >= (SELECT since FROM bounds)
    GROUP BY 1
)
SELECT m.minute,
       coalesce(s.impressions, 0) AS impressions,
       coalesce(a.clicks, 0) AS clicks,
       coalesce(a.purchases, 0) AS purchases
FROM minutes AS m
LEFT JOIN shown AS s USING (minute)
LEFT JOIN attributed AS a USING (minute)
ORDER BY m.minute
"""

_EVENTS = f"""
SELECT count(*) AS events,
       count(*) FILTER (WHERE type = {LIKE}) AS likes,
       count(*) FILTER (WHERE type = {PURCHASE}) AS purchases
FROM events
WHERE occurred_at >= now() - make_interval(secs => %(window_s)s)
"""

# Active = asked for a recommendation or sent feedback; anonymous visitors count by
# session, with the same key as user_state ('session:<id>').
_ACTIVE_USERS = """
SELECT count(*) FROM (
    SELECT CASE WHEN user_id <> '' THEN user_id ELSE 'session:' || session_id END
    FROM events
    WHERE occurred_at >= now() - make_interval(secs => %(window_s)s)
    UNION
    SELECT CASE WHEN user_id <> '' THEN user_id ELSE 'session:' || session_id END
    FROM recommendations
    WHERE created_at >= now() - make_interval(secs => %(window_s)s)
) AS active
"""

_LATENCY = """
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms),
       avg(degraded::int)
FROM recommendations
WHERE created_at >= now() - make_interval(secs => %(window_s)s)
"""

_PARAMETERS = """
SELECT version, parameters, changed_by, reason, created_at
FROM parameter_versions
ORDER BY version DESC
LIMIT %(limit)s
"""


def engagement_per_minute(conn: Connection, window_s: int) -> pd.DataFrame:
    """One row per minute of the window (zeros included): ``minute`` (UTC),
    ``impressions``, attributed ``clicks`` and ``purchases``, and ``ctr`` (NaN when
    nothing was shown that minute)."""
    rows = conn.execute(_PER_MINUTE, {"window_s": window_s}).fetchall()
    frame = pd.DataFrame(rows, columns=["minute", "impressions", "clicks", "purchases"])
    frame["minute"] = pd.to_datetime(frame["minute"], utc=True)
    for column in ("impressions", "clicks", "purchases"):
        frame[column] = frame[column].astype("int64")
    shown = frame["impressions"].where(frame["impressions"] > 0)
    frame["ctr"] = frame["clicks"] / shown
    return frame


def summary(
    conn: Connection, window_s: int, per_minute: pd.DataFrame | None = None
) -> dict[str, float]:
    """Totals of the window: impressions, attributed clicks, ctr, conversion (attributed
    purchases / impressions), events, likes, purchases (all of them, attributed or not)
    and active users. Pass ``per_minute`` when already read to save a query."""
    if per_minute is None:
        per_minute = engagement_per_minute(conn, window_s)
    impressions = int(per_minute["impressions"].sum())
    clicks = int(per_minute["clicks"].sum())
    attributed_purchases = int(per_minute["purchases"].sum())
    row = conn.execute(_EVENTS, {"window_s": window_s}).fetchone()
    events, likes, purchases = row if row is not None else (0, 0, 0)
    active = conn.execute(_ACTIVE_USERS, {"window_s": window_s}).fetchone()
    return {
        "impressions": impressions,
        "clicks": clicks,
        "ctr": clicks / impressions if impressions else 0.0,
        "conversion": attributed_purchases / impressions if impressions else 0.0,
        "events": int(events),
        "likes": int(likes),
        "purchases": int(purchases),
        "active_users": int(active[0]) if active is not None else 0,
    }


def latency(conn: Connection, window_s: int) -> dict[str, float | None]:
    """Recommendations answered in the window, latency p50/p99 in ms (None without any)
    and the share answered ``degraded`` (from the fallback)."""
    row = conn.execute(_LATENCY, {"window_s": window_s}).fetchone()
    count, p50, p99, degraded = row if row is not None else (0, None, None, None)
    return {
        "recommendations": int(count),
        "p50_ms": None if p50 is None else float(p50),
        "p99_ms": None if p99 is None else float(p99),
        "degraded_share": 0.0 if degraded is None else float(degraded),
    }


def current_parameters(conn: Connection) -> dict[str, Any] | None:
    """The newest parameter version (version, parameters, changed_by, reason,
    created_at), or None before the orchestrator has written the first one."""
    row = conn.execute(_PARAMETERS, {"limit": 1}).fetchone()
    if row is None:
        return None
    version, parameters, changed_by, reason, created_at = row
    return {
        "version": int(version),
        "parameters": dict(parameters),
        "changed_by": changed_by,
        "reason": reason,
        "created_at": created_at,
    }


def parameter_history(conn: Connection, limit: int = 20) -> pd.DataFrame:
    """The newest ``limit`` versions, newest first, each with ``changes``: what differs
    from the version before it (``name: old -> new``; "initial" for the first one)."""
    # One extra row so that the oldest shown version can be diffed against its parent.
    rows = conn.execute(_PARAMETERS, {"limit": limit + 1}).fetchall()
    records = []
    for index, (version, parameters, changed_by, reason, created_at) in enumerate(rows[:limit]):
        parent = rows[index + 1][1] if index + 1 < len(rows) else None
        records.append(
            {
                "version": int(version),
                "created_at": created_at,
                "changed_by": changed_by,
                "reason": reason,
                "changes": describe_changes(parent, parameters),
            }
        )
    columns = ["version", "created_at", "changed_by", "reason", "changes"]
    return pd.DataFrame(records, columns=columns)


def describe_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    """``a: 1 -> 2, b: x -> y`` for the keys whose values differ; "initial" without
    ``before``; "no change" when equal."""
    if before is None:
        return "initial"
    changed = [
        f"{key}: {before.get(key, '-')} -> {after.get(key, '-')}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
    return ", ".join(changed) or "no change"
