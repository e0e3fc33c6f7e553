"""Users: the recently active users to pick from, and one user's recent events and current
state (indexed reads of one user)."""

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

# users.last_seen_at is touched by feedback at most once a minute (serving/store/feedback.py):
# "recently" is to the minute. The users table is narrow and has no index on last_seen_at
# (one would make every touch a non-HOT update): a top-N scan of it is cheap.
_RECENT = """
SELECT u.user_id, u.last_seen_at, extract(epoch FROM now() - u.last_seen_at)::float8,
       (SELECT count(*) FROM events AS e WHERE e.user_id = u.user_id),
       coalesce(s.item_ids[greatest(1, cardinality(s.item_ids) - %(last)s + 1):], '{}'),
       coalesce(s.event_types[greatest(1, cardinality(s.event_types) - %(last)s + 1):], '{}')
FROM (SELECT user_id, last_seen_at FROM users
      ORDER BY last_seen_at DESC, user_id LIMIT %(limit)s) AS u
LEFT JOIN user_state AS s ON s.subject = u.user_id
ORDER BY u.last_seen_at DESC, u.user_id
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


def recent_users(conn: Connection, limit: int = 20, last: int = 3) -> pd.DataFrame:
    """The ``limit`` users seen most recently (by their feedback), newest first: when, how
    many events they have, and their ``last`` interactions (item ids and event type names,
    newest first)."""
    columns = ["user_id", "last_seen_at", "seconds_ago", "events", "last_items", "last_types"]
    data = frame(conn, _RECENT, {"limit": limit, "last": last}, columns)
    data["last_items"] = [list(reversed(items)) for items in data["last_items"]]
    data["last_types"] = [
        [EventType(int(t)).name.lower() for t in reversed(types)] for types in data["last_types"]
    ]
    return data


def state(conn: Connection, user_id: str) -> dict[str, Any] | None:
    """The size of the user's history and disliked set, and when it last changed."""
    row = conn.execute(_STATE, {"user_id": user_id}).fetchone()
    if row is None:
        return None
    history, disliked, updated_at = row
    return {"history": int(history or 0), "disliked": int(disliked or 0), "updated_at": updated_at}
