"""The catalogue: items with their content embeddings, and their engagement statistics."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres.db import translate_outages
from serving.adapters.postgres.vectors import embeddings_as_numpy
from serving.core.domain import Item
from serving.core.errors import InvalidArgument
from serving.core.index import ItemStatsRow, StoredItem

UPSERT = """
INSERT INTO items (item_id, title, description, categories, tags, attributes, published_at,
                   available_from, available_until, embedding, content_encoder, updated_at,
                   deleted_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %b, %s, clock_timestamp(), NULL)
ON CONFLICT (item_id) DO UPDATE SET
    title = EXCLUDED.title, description = EXCLUDED.description,
    categories = EXCLUDED.categories, tags = EXCLUDED.tags, attributes = EXCLUDED.attributes,
    published_at = EXCLUDED.published_at, available_from = EXCLUDED.available_from,
    available_until = EXCLUDED.available_until, embedding = EXCLUDED.embedding,
    content_encoder = EXCLUDED.content_encoder, updated_at = EXCLUDED.updated_at, deleted_at = NULL
"""

# The columns of a StoredItem, in _row_to_stored's order (SELECT and RETURNING share them).
STORED_COLUMNS = """item_id, title, description, categories, tags, attributes, published_at,
       available_from, available_until, embedding, updated_at, deleted_at IS NOT NULL,
       content_encoder"""
SELECT_COLUMNS = "SELECT " + STORED_COLUMNS + "\nFROM items\n"


async def upsert_items(
    pool: AsyncConnectionPool, items: Sequence[Item], embeddings: np.ndarray, encoder: str = ""
) -> None:
    """Insert or replace ``items`` with their embeddings (produced by the content encoder
    of fingerprint ``encoder``), in one transaction."""
    rows = [
        (
            item.item_id,
            item.title,
            item.description,
            list(item.categories),
            list(item.tags),
            Jsonb(item.attributes),
            item.published_at,
            item.available_from,
            item.available_until,
            embedding,
            encoder,
        )
        for item, embedding in zip(items, embeddings, strict=True)
    ]
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await embeddings_as_numpy(cur).executemany(UPSERT, rows)
        await cur.executemany(
            "INSERT INTO item_stats (item_id) VALUES (%s) ON CONFLICT DO NOTHING",
            [(item.item_id,) for item in items],
        )


# Locked first, so "live before" is what this transaction changes (a concurrent
# DeleteItems of the same ids waits, then counts none of them again).
LOCK_ITEMS = """
SELECT item_id, deleted_at IS NULL FROM items WHERE item_id = ANY(%s)
ORDER BY item_id FOR UPDATE
"""
SOFT_DELETE = (
    """
UPDATE items SET deleted_at = coalesce(deleted_at, clock_timestamp()),
                 updated_at = clock_timestamp()
WHERE item_id = ANY(%s)
RETURNING """
    + STORED_COLUMNS
)


async def delete_items(
    pool: AsyncConnectionPool, item_ids: Sequence[str]
) -> tuple[list[StoredItem], int]:
    """Soft-delete ``item_ids`` (distinct) in one transaction: their rows stay, marked
    deleted and stamped, so every replica's index refresh takes them out; their events
    and statistics stay. Returns the rows as now stored and how many were live before.
    An id that names no item is InvalidArgument naming ``item_ids[i]``, nothing written."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(LOCK_ITEMS, (list(item_ids),))
        live: dict[str, bool] = dict(await cur.fetchall())
        for index, item_id in enumerate(item_ids):
            if item_id not in live:
                raise InvalidArgument(f"item_ids[{index}]", f"unknown item {item_id!r}")
        cur = await conn.execute(SOFT_DELETE, (list(item_ids),))
        stored = [_row_to_stored(row) for row in await cur.fetchall()]
    return stored, sum(live.values())


def _row_to_stored(row: tuple) -> StoredItem:
    (item_id, title, description, categories, tags, attributes, published, available_from,
     available_until, embedding, updated, deleted, encoder) = row  # fmt: skip
    item = Item(
        item_id=item_id,
        title=title,
        description=description,
        categories=tuple(categories),
        tags=tuple(tags),
        published_at=published,
        attributes=dict(attributes),
        available_from=available_from,
        available_until=available_until,
    )
    return StoredItem(item, np.asarray(embedding, dtype=np.float32), updated, deleted, encoder)


async def items_changed_since(
    pool: AsyncConnectionPool, since: datetime | None
) -> list[StoredItem]:
    """Every item (``since`` None) or those written after ``since``, oldest change first."""
    async with pool.connection() as conn, conn.cursor(binary=True) as cur:
        cur = embeddings_as_numpy(cur)
        if since is None:
            await cur.execute(SELECT_COLUMNS + " ORDER BY updated_at")
        else:
            await cur.execute(
                SELECT_COLUMNS + " WHERE updated_at > %s ORDER BY updated_at", (since,)
            )
        return [_row_to_stored(row) for row in await cur.fetchall()]


async def items_page(pool: AsyncConnectionPool, after: str | None, limit: int) -> list[StoredItem]:
    """Up to ``limit`` items (deleted ones too) in item id order, from just after ``after``
    (None: the first): the whole catalogue a page at a time, along the primary key."""
    async with pool.connection() as conn, conn.cursor(binary=True) as cur:
        cur = embeddings_as_numpy(cur)
        if after is None:
            await cur.execute(SELECT_COLUMNS + " ORDER BY item_id LIMIT %s", (limit,))
        else:
            await cur.execute(
                SELECT_COLUMNS + " WHERE item_id > %s ORDER BY item_id LIMIT %s", (after, limit)
            )
        return [_row_to_stored(row) for row in await cur.fetchall()]


async def database_now(pool: AsyncConnectionPool) -> datetime:
    """The database server's clock (the one that stamps ``updated_at``)."""
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT clock_timestamp()")).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def count_items(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT count(*) FROM items")).fetchone()
        return int(row[0]) if row else 0


async def existing_item_ids(conn: AsyncConnection, item_ids: Sequence[str]) -> set[str]:
    """Which of ``item_ids`` are live items."""
    cur = await conn.execute(
        "SELECT item_id FROM items WHERE item_id = ANY(%s) AND deleted_at IS NULL",
        (list(item_ids),),
    )
    return {row[0] for row in await cur.fetchall()}


async def stats_changed_since(
    pool: AsyncConnectionPool, since: datetime | None
) -> list[ItemStatsRow]:
    """Decayed-popularity rows written after ``since`` (all when None)."""
    query = (
        "SELECT item_id, popularity, popularity_at, updated_at, impressions, clicks FROM item_stats"
    )
    async with pool.connection() as conn, conn.cursor(binary=True) as cur:
        cur = embeddings_as_numpy(cur)
        if since is None:
            await cur.execute(query)
        else:
            await cur.execute(query + " WHERE updated_at > %s", (since,))
        return [ItemStatsRow(*row) for row in await cur.fetchall()]


class PostgresItems:
    """The Catalogue port on PostgreSQL."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @translate_outages
    async def upsert_items(
        self, items: Sequence[Item], embeddings: np.ndarray, encoder: str = ""
    ) -> None:
        await upsert_items(self._pool, items, embeddings, encoder)

    @translate_outages
    async def delete_items(self, item_ids: Sequence[str]) -> tuple[list[StoredItem], int]:
        return await delete_items(self._pool, item_ids)

    @translate_outages
    async def database_now(self) -> datetime:
        return await database_now(self._pool)

    @translate_outages
    async def items_changed_since(self, since: datetime | None) -> list[StoredItem]:
        return await items_changed_since(self._pool, since)

    @translate_outages
    async def items_page(self, after: str | None, limit: int) -> list[StoredItem]:
        return await items_page(self._pool, after, limit)

    @translate_outages
    async def count_items(self) -> int:
        return await count_items(self._pool)

    @translate_outages
    async def stats_changed_since(self, since: datetime | None) -> list[ItemStatsRow]:
        return await stats_changed_since(self._pool, since)
