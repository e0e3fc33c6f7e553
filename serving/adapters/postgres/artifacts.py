"""Model artifacts the orchestrator needs to place items in a user encoder's space."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres.db import connection_of_its_own, translate_outages
from serving.core.domain import USER_ENCODER
from serving.core.encoders import ContentEncoderId
from serving.core.itemspace import ItemSpace


def _pack(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def _unpack(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


async def save_item_space(
    pool: AsyncConnectionPool, space: ItemSpace, metrics: dict[str, Any]
) -> None:
    if space.item_embeddings is None:
        raise ValueError("a space as an orchestrator keeps it (served) has no embeddings to save")
    projection = np.concatenate([space.projection_weight, space.projection_bias[:, None]], axis=1)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO model_artifacts (model_name, version, vocabulary, item_embeddings,"
            " content_projection, known_vectors, config, metrics)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (model_name, version) DO UPDATE SET vocabulary = EXCLUDED.vocabulary,"
            " item_embeddings = EXCLUDED.item_embeddings,"
            " content_projection = EXCLUDED.content_projection,"
            " known_vectors = EXCLUDED.known_vectors, config = EXCLUDED.config,"
            " metrics = EXCLUDED.metrics",
            (
                USER_ENCODER,
                space.version,
                list(space.vocabulary),
                _pack(space.item_embeddings),
                _pack(projection),
                _pack(space.known_vectors) if space.known_vectors is not None else None,
                Jsonb(
                    {
                        "max_len": space.max_len,
                        # None: a version trained before encoders were recorded
                        "content_encoder": (
                            space.content_encoder.to_dict() if space.content_encoder else None
                        ),
                    }
                ),
                Jsonb(metrics),
            ),
        )


async def load_item_space(pool: AsyncConnectionPool, version: int) -> ItemSpace | None:
    # Binary results: in text, bytea arrives hex-encoded (twice its size: a million items'
    # two 256 MB matrices made a 1 GB result) and is decoded in Python. On a connection of
    # its own: a pooled one would keep a buffer the size of the result.
    async with await connection_of_its_own(pool) as conn, conn.cursor(binary=True) as cur:
        await cur.execute(
            "SELECT vocabulary, item_embeddings, content_projection, known_vectors, config"
            " FROM model_artifacts WHERE model_name = %s AND version = %s",
            (USER_ENCODER, version),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    vocabulary, embeddings, projection, known, config = row
    matrix = _unpack(projection)
    return ItemSpace(
        version=version,
        max_len=int(config["max_len"]),
        vocabulary=tuple(vocabulary),
        item_embeddings=_unpack(embeddings),
        projection_weight=matrix[:, :-1],
        projection_bias=matrix[:, -1],
        content_encoder=ContentEncoderId.from_dict(config.get("content_encoder")),
        known_vectors=_unpack(known) if known is not None else None,
    )


async def latest_version(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT coalesce(max(version), 0) FROM model_artifacts WHERE model_name = %s",
            (USER_ENCODER,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


class PostgresItemSpaces:
    """The ItemSpaces port on PostgreSQL."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @translate_outages
    async def load_item_space(self, version: int) -> ItemSpace | None:
        return await load_item_space(self._pool, version)
