"""Users: one user's recent events and current state (indexed reads of one user)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dashboard.queries import Connection, frame
from serving.core.domain import EventType

_EVENTS = """
SELECT e.occurred_at, e.type, e.item_id, coalesce(i.title, ''), coalesce(e.variant, ''),
       coalesce(e.recommendation_id, '')
FROM events AS e LEFT JOIN items AS i USING (item_id)
WHERE e.user_id = %(user_id)s
ORDER BY e.occurred_at DESC
LIMIT %(limit)s
"""

_STATE = """
SELECT cardinality(item_ids), cardinality(disliked), updated_at
FROM user_state WHERE subject = %(user_id)s
"""


def recent_events(conn: Connection, user_id: str, limit: int = 50) -> pd.DataFrame:
    """The user's newest events, with the item's title and the event type's name."""
    columns = ["occurred_at", "type", "item_id", "title", "variant", "recommendation_id"]
    data = frame(conn, _EVENTS, {"user_id": user_id, "limit": limit}, columns)
    data["type"] = [EventType(int(t)).name.lower() for t in data["type"]]
    return data


def state(conn: Connection, user_id: str) -> dict[str, Any] | None:
    """The size of the user's history and disliked set, and when it last changed."""
    row = conn.execute(_STATE, {"user_id": user_id}).fetchone()
    if row is None:
        return None
    history, disliked, updated_at = row
    return {"history": int(history or 0), "disliked": int(disliked or 0), "updated_at": updated_at}
