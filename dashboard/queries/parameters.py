"""Parameters: the version history with what each version changed."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dashboard.queries import Connection

_HISTORY = """
SELECT version, parameters, changed_by, reason, created_at
FROM parameter_versions
ORDER BY version DESC
LIMIT %(limit)s
"""


def history(conn: Connection, limit: int = 50) -> pd.DataFrame:
    """The newest ``limit`` versions, newest first, each with ``changes``: what differs
    from the version before it (``name: old -> new``; "initial" for the first one)."""
    # One extra row so that the oldest shown version can be diffed against its parent.
    rows = conn.execute(_HISTORY, {"limit": limit + 1}).fetchall()
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
