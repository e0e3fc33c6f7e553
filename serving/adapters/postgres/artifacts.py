"""Model artifacts the orchestrator needs to place items in a user encoder's space."""

from __future__ import annotations

import functools
import io
import math
from typing import Any

import numpy as np
from psycopg import AsyncCursor, IsolationLevel, sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres.db import connection_of_its_own, translate_outages
from serving.core.domain import USER_ENCODER
from serving.core.encoders import ContentEncoderId
from serving.core.itemspace import ItemSpace, learned_rows


def _pack(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def _unpack(blob: bytes | bytearray) -> np.ndarray:
    """The array a ``_pack`` blob holds, as a view of the blob (not a copy of it)."""
    header = io.BytesIO(memoryview(blob)[:_NPY_HEADER_MAX])
    major, _ = np.lib.format.read_magic(header)
    read_header = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    shape, fortran_order, dtype = read_header(header)
    flat = np.frombuffer(blob, dtype, count=math.prod(shape), offset=header.tell())
    return flat.reshape(shape, order="F" if fortran_order else "C")


_NPY_HEADER_MAX = 65_536 + 10
"""np.save's longest version-1 header (a 2-D matrix's takes some 128 bytes)."""

BLOB_SLICE = 32 * 2**20
"""Bytes of an artifact read per statement. libpq holds a whole result, in an input buffer
grown to its size, while psycopg copies it out: the two 256 MB matrices of a million-item
version read in one row cost 1.5 GB for a moment (a replica's peak RSS)."""


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


async def load_item_space(
    pool: AsyncConnectionPool, version: int, slice_bytes: int = BLOB_SLICE
) -> ItemSpace | None:
    """The version's item space as an orchestrator keeps it (``ItemSpace.served``). On a
    connection of its own (a pooled one would keep a buffer the size of a slice), in one
    snapshot (a re-export between its statements cannot mix two versions' matrices)."""
    async with await connection_of_its_own(pool) as conn:
        await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
        async with conn.transaction(), conn.cursor(binary=True) as cur:
            # Binary results: in text, bytea arrives hex-encoded (twice its size).
            await cur.execute(
                "SELECT vocabulary, content_projection, config, octet_length(item_embeddings),"
                " octet_length(known_vectors) FROM model_artifacts"
                " WHERE model_name = %s AND version = %s",
                (USER_ENCODER, version),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            vocabulary, projection, config, embeddings_size, known_size = row
            read = functools.partial(_read_blob, cur, version, slice_bytes=slice_bytes)
            learned = _unpack(await read("item_embeddings", embeddings_size))
            embeddings: np.ndarray | None = learned
            known = mask = None
            if known_size:
                # Of the learned embeddings a served space keeps only which rows are set:
                # dropped before the known vectors arrive (256 MB less at the peak).
                embeddings, mask = None, learned_rows(learned)
                del learned
                known = _unpack(await read("known_vectors", known_size))
    matrix = _unpack(projection)
    return ItemSpace(
        version=version,
        max_len=int(config["max_len"]),
        vocabulary=tuple(vocabulary),
        item_embeddings=embeddings,
        projection_weight=matrix[:, :-1],
        projection_bias=matrix[:, -1],
        content_encoder=ContentEncoderId.from_dict(config.get("content_encoder")),
        known_vectors=known,
        learned_mask=mask,
    )


async def _read_blob(
    cur: AsyncCursor[Any], version: int, column: str, size: int, slice_bytes: int
) -> bytearray:
    """A bytea column of the version's row, ``slice_bytes`` at a time into one buffer."""
    blob, step = bytearray(size), min(slice_bytes, size)  # a bytea is under 1 GB: an int4
    statement = sql.SQL(
        "SELECT substring({} FROM %s::int4 FOR %s::int4) FROM model_artifacts"
        " WHERE model_name = %s AND version = %s"
    ).format(sql.Identifier(column))
    for start in range(0, size, step):
        await cur.execute(statement, (start + 1, step, USER_ENCODER, version))
        row = await cur.fetchone()
        assert row is not None, "the row is in this transaction's snapshot"
        blob[start : start + len(row[0])] = row[0]
    return blob


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
