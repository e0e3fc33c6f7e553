"""System: Recommend latency percentiles and the degraded share (rollups), feedback
ingestion per minute, and the database's size."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from dashboard.queries import Connection, frame, one

_HISTOGRAM = """
SELECT le_ms, sum(recommendations)::bigint
FROM rollup_latency
WHERE minute >= date_trunc('minute', now() - make_interval(secs => %(window_s)s))
GROUP BY le_ms
ORDER BY le_ms
"""

_DEGRADED = """
SELECT coalesce(sum(recommendations), 0)::bigint, coalesce(sum(degraded), 0)::bigint
FROM rollup_minute
WHERE minute >= date_trunc('minute', now() - make_interval(secs => %(window_s)s))
"""

_INGEST = """
SELECT minute, events FROM rollup_ingest
WHERE minute >= date_trunc('minute', now() - make_interval(secs => %(window_s)s))
ORDER BY minute
"""

_SIZES = """
SELECT pg_database_size(current_database()),
       (SELECT coalesce(json_agg(t), '[]') FROM (
            SELECT coalesce(p.relname, c.relname) AS "table",
                   sum(pg_total_relation_size(c.oid))::bigint AS bytes
            FROM pg_class AS c
            JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = 'public'
            LEFT JOIN pg_inherits AS h ON h.inhrelid = c.oid
            LEFT JOIN pg_class AS p ON p.oid = h.inhparent
            WHERE c.relkind = 'r'
            GROUP BY 1 ORDER BY 2 DESC LIMIT 10) AS t)
"""


def quantile(bounds: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile of a histogram (bucket upper bounds, counts), interpolated
    linearly inside its bucket like Prometheus' histogram_quantile; None when empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank, cumulative, lower = q * total, 0, 0.0
    for upper, count in zip(bounds, counts, strict=True):
        if count and cumulative + count >= rank:
            if math.isinf(upper):
                return lower  # beyond the last finite bound: the best known lower limit
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
        lower = upper
    return lower


def latency(conn: Connection, window_s: int) -> dict[str, float | None]:
    """Recommendations in the window, latency p50/p95/p99 in ms and the degraded share."""
    rows = conn.execute(_HISTOGRAM, {"window_s": window_s}).fetchall()
    bounds, counts = [float(r[0]) for r in rows], [int(r[1]) for r in rows]
    answered, degraded = one(conn, _DEGRADED, {"window_s": window_s})
    return {
        "recommendations": float(answered),
        "p50_ms": quantile(bounds, counts, 0.5),
        "p95_ms": quantile(bounds, counts, 0.95),
        "p99_ms": quantile(bounds, counts, 0.99),
        "degraded_share": degraded / answered if answered else 0.0,
    }


def ingestion(conn: Connection, window_s: int) -> pd.DataFrame:
    """Feedback events received per minute."""
    data = frame(conn, _INGEST, {"window_s": window_s}, ["minute", "events"])
    data["minute"] = pd.to_datetime(data["minute"], utc=True)
    return data


def database_size(conn: Connection) -> tuple[int, pd.DataFrame]:
    """The database's size in bytes and its ten largest tables (partitions summed up)."""
    total, tables = one(conn, _SIZES, {})
    return int(total), pd.DataFrame(tables, columns=["table", "bytes"])
