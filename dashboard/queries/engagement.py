"""Overview: engagement totals and time series for "the last N" windows, from rollups.

CTR = attributed clicks / impressions and conversion = attributed purchases / impressions
(docs/ARCHITECTURE.md, "Metric definitions": same recommendation and item within 30
minutes; an impression counts once however often it was clicked). Likes, add-to-carts and
purchases are all events of the type. Active users and sessions are those seen (a
recommendation or an event) in the window.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from psycopg import sql

from dashboard.queries import PASS_WATERMARK, Connection, frame, one, watermark

WINDOWS: dict[str, int] = {
    "Last 15 min": 15 * 60,
    "Last hour": 3600,
    "Last 24 h": 24 * 3600,
    "Last 7 days": 7 * 24 * 3600,
}
"""Selectable windows, label -> seconds."""
BUCKETS: dict[int, int] = {15 * 60: 60, 3600: 60, 24 * 3600: 900, 7 * 24 * 3600: 7200}
"""Seconds per chart point for each window (about 100 points or fewer)."""

COUNTS = (
    "recommendations",
    "degraded",
    "impressions",
    "attributed_clicks",
    "attributed_add_to_carts",
    "attributed_purchases",
    "clicks",
    "likes",
    "dislikes",
    "skips",
    "add_to_carts",
    "purchases",
)
_SUMS = sql.SQL(", ").join(
    sql.SQL("sum({c})::bigint AS {c}").format(c=sql.Identifier(c)) for c in COUNTS
)
_FILLED = sql.SQL(", ").join(
    sql.SQL("coalesce(p.{c}, 0)").format(c=sql.Identifier(c)) for c in COUNTS
)


def _bin(moment: str) -> sql.Composed:
    """``moment`` (an SQL expression) rounded down to the chart's bucket."""
    return sql.SQL(
        "date_bin(make_interval(secs => %(bucket_s)s), {}, timestamptz '2000-01-01')"
    ).format(sql.SQL(moment))  # moment: an SQL expression written in this module


# Every bucket of the window (zeros included), so that gaps read as gaps.
_SERIES = sql.SQL("""
WITH per_bucket AS (
    SELECT {minute_bin} AS bucket, {sums}
    FROM rollup_minute
    WHERE minute >= date_trunc('minute', now() - make_interval(secs => %(window_s)s))
    GROUP BY 1
),
buckets AS (
    SELECT generate_series({start_bin}, now(), make_interval(secs => %(bucket_s)s)) AS bucket
)
SELECT b.bucket, {filled}
FROM buckets AS b LEFT JOIN per_bucket AS p USING (bucket)
ORDER BY b.bucket
""").format(
    minute_bin=_bin("minute"),
    sums=_SUMS,
    start_bin=_bin("now() - make_interval(secs => %(window_s)s)"),
    filled=_FILLED,
)

_ACTIVE = """
SELECT (SELECT count(*) FROM rollup_last_seen
        WHERE kind = 'u' AND last_seen_at >= now() - make_interval(secs => %(window_s)s)),
       (SELECT count(*) FROM rollup_last_seen
        WHERE kind = 's' AND last_seen_at >= now() - make_interval(secs => %(window_s)s))
"""

_CHANGES = """
SELECT version, created_at, changed_by, reason
FROM parameter_versions
WHERE created_at >= now() - make_interval(secs => %(window_s)s)
ORDER BY version
"""


def series(conn: Connection, window_s: int) -> pd.DataFrame:
    """One row per chart bucket: ``bucket`` (UTC start), the rollup counts, ``ctr`` and
    ``conversion`` (NaN where nothing was shown)."""
    bucket_s = BUCKETS.get(window_s, max(60, window_s // 100))
    params = {"window_s": window_s, "bucket_s": bucket_s}
    data = frame(conn, _SERIES, params, ["bucket", *COUNTS])
    data["bucket"] = pd.to_datetime(data["bucket"], utc=True)
    shown = data["impressions"].where(data["impressions"] > 0)
    data["ctr"] = data["attributed_clicks"] / shown
    data["conversion"] = data["attributed_purchases"] / shown
    return data


def totals(conn: Connection, window_s: int, per_bucket: pd.DataFrame) -> dict[str, float]:
    """The window's totals (from its ``series``) with CTR, conversion, active users and
    sessions."""
    sums = {c: int(per_bucket[c].sum()) for c in COUNTS}
    users, sessions = one(conn, _ACTIVE, {"window_s": window_s})
    shown = sums["impressions"]
    return sums | {
        "ctr": sums["attributed_clicks"] / shown if shown else 0.0,
        "conversion": sums["attributed_purchases"] / shown if shown else 0.0,
        "active_users": int(users),
        "active_sessions": int(sessions),
    }


def parameter_changes(conn: Connection, window_s: int) -> pd.DataFrame:
    """Parameter versions created in the window (to mark on the time series)."""
    data = frame(conn, _CHANGES, {"window_s": window_s}, ["version", "created_at", "by", "reason"])
    data["created_at"] = pd.to_datetime(data["created_at"], utc=True)
    return data


def freshness(conn: Connection) -> Any:
    """Up to when the rollups hold the traffic (None before the first refresh)."""
    return watermark(conn, PASS_WATERMARK)
