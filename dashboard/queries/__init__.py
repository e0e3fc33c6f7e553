"""The dashboard's reads, one module per page. Each function takes an open psycopg
connection and returns plain data (dicts, DataFrames).

Traffic figures come from the rollup tables (migration 0004, refreshed by every server,
serving/adapters/postgres/rollups.py), never from scans of the raw events or impressions, so a page
costs the same with ten thousand events or ten million. Windows are relative to the
database's ``now()``, so the dashboard host's clock does not matter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

Connection = psycopg.Connection[Any]


def frame(
    conn: Connection,
    query: str | sql.Composed,
    params: Mapping[str, Any],
    columns: Sequence[str],
) -> pd.DataFrame:
    """The rows of ``query`` as a DataFrame with ``columns`` (empty when there are none)."""
    rows = conn.execute(query, params).fetchall()
    return pd.DataFrame(rows, columns=list(columns))


def one(conn: Connection, query: str, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """The single row of an aggregate query."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, "an aggregate query returns one row"
    return tuple(row)


# The refresher's watermarks (serving/store/rollups.py WATERMARK and ITEM_WINDOWS; named
# here, not imported, so that the pages do not depend on the store's module layout).
PASS_WATERMARK = "dashboard"
WINDOWS_WATERMARK = "item_windows"


def watermark(conn: Connection, name: str) -> Any:
    """When the refresher last moved watermark ``name`` (None before it ever did)."""
    row = conn.execute("SELECT watermark FROM rollup_watermarks WHERE name = %s", (name,))
    found = row.fetchone()
    return None if found is None else found[0]
