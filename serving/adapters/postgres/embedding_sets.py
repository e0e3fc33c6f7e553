"""Re-embedding the catalogue: a new embedding set, staged batch by batch, then switched to
in one transaction.

The staged vectors of one encoder (``item_embedding_staging``, migration 0005) are
committed per batch, so an interrupted `recsys reembed` resumes where it stopped and a
long run holds no lock on ``items``. The catalogue itself only changes in ``switch``: one
transaction moves every staged vector into ``items`` with the encoder recorded, so a
reader (a replica's index refresh) sees either the old encoder's catalogue or the new
one's, never half of each. A row written while the run was embedding (its
``updated_at`` moved) is left out of the switch; the next pass embeds it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres.items import SELECT_COLUMNS, _row_to_stored
from serving.adapters.postgres.vectors import embeddings_as_numpy
from serving.core.index import StoredItem

STAGE = """
INSERT INTO item_embedding_staging (encoder, item_id, embedding, source_updated_at)
VALUES (%s, %s, %b, %s)
ON CONFLICT (encoder, item_id) DO UPDATE SET
    embedding = EXCLUDED.embedding, source_updated_at = EXCLUDED.source_updated_at
"""

SWITCH = """
UPDATE items
SET embedding = s.embedding, content_encoder = s.encoder, updated_at = clock_timestamp()
FROM item_embedding_staging s
WHERE s.encoder = %s AND s.item_id = items.item_id AND items.updated_at = s.source_updated_at
"""


async def not_of(pool: AsyncConnectionPool, encoder: str) -> list[StoredItem]:
    """Every item (deleted ones too: an upsert can bring them back) whose vector is not of
    the encoder of fingerprint ``encoder``."""
    async with pool.connection() as conn, conn.cursor(binary=True) as cur:
        await embeddings_as_numpy(cur).execute(
            SELECT_COLUMNS + " WHERE content_encoder <> %s ORDER BY item_id", (encoder,)
        )
        return [_row_to_stored(row) for row in await cur.fetchall()]


async def staged(pool: AsyncConnectionPool, encoder: str) -> dict[str, datetime]:
    """Items already staged for ``encoder``, with the ``updated_at`` their text had."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT item_id, source_updated_at FROM item_embedding_staging WHERE encoder = %s",
            (encoder,),
        )
        return {item_id: at for item_id, at in await cur.fetchall()}


async def stage(
    pool: AsyncConnectionPool,
    encoder: str,
    items: Sequence[StoredItem],
    embeddings: np.ndarray,
) -> None:
    """Stage one batch of ``encoder``'s vectors (one transaction)."""
    rows = [
        (encoder, s.item.item_id, vector, s.updated_at)
        for s, vector in zip(items, embeddings, strict=True)
    ]
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await embeddings_as_numpy(cur).executemany(STAGE, rows)


async def switch(pool: AsyncConnectionPool, encoder: str) -> int:
    """Move ``encoder``'s staged vectors into the catalogue, in one transaction; the number
    of items switched."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(SWITCH, (encoder,))
        switched = cur.rowcount
        await conn.execute("DELETE FROM item_embedding_staging WHERE encoder = %s", (encoder,))
    return switched
