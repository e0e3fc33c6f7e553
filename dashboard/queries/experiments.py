"""Experiments: the experiments and their variants, and each variant's traffic while the
experiment ran (from the per-minute rollup; one experiment runs at a time, so its running
period tells its variants' traffic apart from a later experiment's same-named variants)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pandas as pd

from dashboard.queries import Connection, frame

_EXPERIMENTS = """
SELECT e.name, e.status, e.created_at, e.stopped_at, e.changed_by, e.reason,
       coalesce(json_agg(json_build_object('name', v.name, 'share', v.share,
                                           'overrides', v.parameters) ORDER BY v.position)
                FILTER (WHERE v.name IS NOT NULL), '[]')
FROM experiments AS e LEFT JOIN variants AS v ON v.experiment = e.name
GROUP BY e.name
ORDER BY e.created_at DESC
LIMIT %(limit)s
"""

_VARIANT_TRAFFIC = """
SELECT variant, sum(recommendations)::bigint, sum(impressions)::bigint,
       sum(attributed_clicks)::bigint, sum(attributed_purchases)::bigint
FROM rollup_minute
WHERE minute >= date_trunc('minute', %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR minute < %(until)s::timestamptz)
  AND variant = ANY(%(variants)s)
GROUP BY variant
"""


def experiments(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first: name, status, created_at, stopped_at, changed_by, reason, and
    variants (name, share, overrides)."""
    rows = conn.execute(_EXPERIMENTS, {"limit": limit}).fetchall()
    keys = ("name", "status", "created_at", "stopped_at", "changed_by", "reason", "variants")
    found = [dict(zip(keys, row, strict=True)) for row in rows]
    for experiment in found:
        if isinstance(experiment["variants"], str):
            experiment["variants"] = json.loads(experiment["variants"])
    return found


def variant_traffic(
    conn: Connection, variants: list[str], since: datetime, until: datetime | None
) -> pd.DataFrame:
    """Per variant (every one of ``variants``, zeros included): recommendations,
    impressions, attributed clicks and purchases between ``since`` and ``until``."""
    columns = ["variant", "recommendations", "impressions", "clicks", "purchases"]
    params = {"variants": variants, "since": since, "until": until}
    data = frame(conn, _VARIANT_TRAFFIC, params, columns).set_index("variant")
    data = data.reindex(variants, fill_value=0).reset_index()
    return data.astype({c: "int64" for c in columns[1:]})
