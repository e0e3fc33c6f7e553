"""Catalogue: exposure and engagement per item over the last 1, 7 or 30 UTC days (from
the per-item window rollup: recomputed at every refresh pass on a small catalogue, at most
every few minutes on a large one), coverage, cold items, category mix and the long tail;
one item's numbers and days.

- Coverage = distinct items shown / items available now.
- Cold items: ingested within the last ``COLD_DAYS`` days.
- Long-tail share = share of impressions on items outside the head of the catalogue (the
  top 20% by popularity, see serving.adapters.postgres.rollups.HEAD_SHARE).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dashboard.queries import WINDOWS_WATERMARK, Connection, frame, one, watermark
from dashboard.queries.embeddings import ContentIndex
from serving.adapters.postgres.rollups import ITEM_WINDOW_DAYS

WINDOWS: dict[str, int] = dict(
    zip(("Today (UTC)", "Last 7 days", "Last 30 days"), ITEM_WINDOW_DAYS, strict=True)
)
"""Selectable windows, label -> days (today included)."""
COLD_DAYS = 7

_SUMMARY = """
WITH catalogue AS (
    SELECT count(*) FILTER (WHERE (available_from IS NULL OR available_from <= now())
                              AND (available_until IS NULL OR available_until > now()))
               AS available,
           count(*) FILTER (WHERE created_at >= now() - make_interval(days => %(cold_days)s))
               AS cold
    FROM items
    WHERE deleted_at IS NULL
),
shown AS (
    SELECT count(*) FILTER (WHERE impressions > 0) AS items,
           coalesce(sum(impressions), 0)::bigint AS impressions,
           coalesce(sum(attributed_clicks), 0)::bigint AS clicks,
           coalesce(sum(impressions) FILTER (WHERE NOT head), 0)::bigint AS tail,
           coalesce(sum(impressions) FILTER (WHERE item_created_at >= now()
               - make_interval(days => %(cold_days)s)), 0)::bigint AS cold_impressions,
           count(*) FILTER (WHERE impressions > 0 AND item_created_at >= now()
               - make_interval(days => %(cold_days)s)) AS cold_items
    FROM rollup_item_window
    WHERE days = %(days)s
)
SELECT c.available, s.items, s.impressions, s.clicks, s.tail, c.cold, s.cold_impressions,
       s.cold_items
FROM catalogue AS c, shown AS s
"""

_TOP = """
SELECT w.item_id, i.title, w.category, w.impressions, w.attributed_clicks,
       w.attributed_purchases
FROM rollup_item_window AS w JOIN items AS i USING (item_id)
WHERE w.days = %(days)s
ORDER BY w.impressions DESC
LIMIT %(limit)s
"""

_CATEGORIES = """
SELECT CASE WHEN category = '' THEN '(none)' ELSE category END, sum(impressions)::bigint,
       sum(attributed_clicks)::bigint
FROM rollup_item_window
WHERE days = %(days)s
GROUP BY 1
ORDER BY 2 DESC
"""

_BY_ID = "SELECT item_id, title FROM items WHERE item_id = %(item_id)s AND deleted_at IS NULL"

_ITEM = """
SELECT i.item_id, i.title, i.description, i.categories, i.tags, i.created_at,
       i.published_at, s.impressions, s.clicks, s.likes, s.dislikes, s.skips, s.add_to_carts,
       s.purchases, s.popularity
FROM items AS i LEFT JOIN item_stats AS s USING (item_id)
WHERE i.item_id = %(item_id)s
"""

_ITEM_DAYS = """
SELECT day, impressions, attributed_clicks, attributed_purchases
FROM rollup_item_daily
WHERE item_id = %(item_id)s AND day > (now() AT TIME ZONE 'UTC')::date - %(days)s
ORDER BY day
"""

_TITLES = "SELECT item_id, title FROM items WHERE item_id = ANY(%(ids)s)"


def summary(conn: Connection, days: int) -> dict[str, float]:
    """Coverage, long-tail share and cold-item exposure over the last ``days`` days."""
    params = {"days": days, "cold_days": COLD_DAYS}
    available, shown, impressions, clicks, tail, cold, cold_impressions, cold_shown = one(
        conn, _SUMMARY, params
    )
    return {
        "available_items": int(available),
        "items_shown": int(shown),
        "coverage": shown / available if available else 0.0,
        "impressions": int(impressions),
        "ctr": clicks / impressions if impressions else 0.0,
        "long_tail_share": tail / impressions if impressions else 0.0,
        "cold_items": int(cold),
        "cold_items_shown": int(cold_shown),
        "cold_share": cold_impressions / impressions if impressions else 0.0,
    }


def top_items(conn: Connection, days: int, limit: int = 20) -> pd.DataFrame:
    """The most shown items of the window with their attributed clicks and purchases."""
    columns = ["item_id", "title", "category", "impressions", "clicks", "purchases"]
    data = frame(conn, _TOP, {"days": days, "limit": limit}, columns)
    data["ctr"] = data["clicks"] / data["impressions"].where(data["impressions"] > 0)
    return data


def category_mix(conn: Connection, days: int) -> pd.DataFrame:
    """Impressions and attributed clicks per primary category."""
    columns = ["category", "impressions", "clicks"]
    return frame(conn, _CATEGORIES, {"days": days}, columns)


def search(
    conn: Connection, index: ContentIndex, text: str, limit: int = 20
) -> list[tuple[str, str]]:
    """(item_id, title): the item whose id is ``text`` (from the database, so a new item
    is found at once), then those whose title contains it (from ``index``)."""
    exact = [(str(i), str(t)) for i, t in conn.execute(_BY_ID, {"item_id": text}).fetchall()]
    return (exact + [found for found in index.search(text, limit) if found not in exact])[:limit]


def item(conn: Connection, item_id: str) -> dict[str, Any] | None:
    """One item's content and all-time counters (item_stats), or None."""
    cur = conn.execute(_ITEM, {"item_id": item_id})
    row = cur.fetchone()
    if row is None:
        return None
    assert cur.description is not None
    return dict(zip([c.name for c in cur.description], row, strict=True))


def item_days(conn: Connection, item_id: str, days: int) -> pd.DataFrame:
    """One item's impressions and attributed clicks and purchases per day."""
    columns = ["day", "impressions", "clicks", "purchases"]
    return frame(conn, _ITEM_DAYS, {"item_id": item_id, "days": days}, columns)


def titles(conn: Connection, item_ids: list[str]) -> dict[str, str]:
    """item_id -> title for the given ids (unknown ids are left out)."""
    return dict(conn.execute(_TITLES, {"ids": item_ids}).fetchall())


def computed_at(conn: Connection) -> Any:
    """When the window figures were last recomputed (None before the first time)."""
    return watermark(conn, WINDOWS_WATERMARK)
