"""Model artifacts the orchestrator needs to place items in a user encoder's space."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

USER_ENCODER = "user_encoder"


@dataclass(frozen=True)
class ItemSpace:
    """Learned item embeddings (row i is vocabulary[i]) and the content projection."""

    version: int
    max_len: int
    """History length the model was built for; requests are left-padded to it."""
    vocabulary: tuple[str, ...]
    item_embeddings: np.ndarray
    projection_weight: np.ndarray
    projection_bias: np.ndarray

    @cached_property
    def token(self) -> dict[str, int]:
        """Model input id of each vocabulary item (1-based; 0 means no learned embedding)."""
        return {item_id: i + 1 for i, item_id in enumerate(self.vocabulary)}

    @cached_property
    def _learned(self) -> np.ndarray:
        """Learned embeddings by token; row 0 (no learned embedding) is zero."""
        zero = np.zeros((1, self.item_embeddings.shape[1]), dtype=np.float32)
        return np.concatenate([zero, self.item_embeddings.astype(np.float32)])

    def vectors(self, item_ids: Sequence[str], content: np.ndarray) -> np.ndarray:
        """Item vectors: learned embedding (zero for items the model never saw) + projection."""
        tokens = np.fromiter(
            (self.token.get(i, 0) for i in item_ids), dtype=np.int64, count=len(item_ids)
        )
        projected = content @ self.projection_weight.T + self.projection_bias
        return (self._learned[tokens] + projected).astype(np.float32)


def _pack(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def _unpack(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


async def save_item_space(
    pool: AsyncConnectionPool, space: ItemSpace, metrics: dict[str, Any]
) -> None:
    projection = np.concatenate([space.projection_weight, space.projection_bias[:, None]], axis=1)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO model_artifacts (model_name, version, vocabulary, item_embeddings,"
            " content_projection, config, metrics) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (model_name, version) DO UPDATE SET vocabulary = EXCLUDED.vocabulary,"
            " item_embeddings = EXCLUDED.item_embeddings,"
            " content_projection = EXCLUDED.content_projection, config = EXCLUDED.config,"
            " metrics = EXCLUDED.metrics",
            (
                USER_ENCODER,
                space.version,
                list(space.vocabulary),
                _pack(space.item_embeddings),
                _pack(projection),
                Jsonb({"max_len": space.max_len}),
                Jsonb(metrics),
            ),
        )


async def load_item_space(pool: AsyncConnectionPool, version: int) -> ItemSpace | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT vocabulary, item_embeddings, content_projection, config FROM model_artifacts"
            " WHERE model_name = %s AND version = %s",
            (USER_ENCODER, version),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    vocabulary, embeddings, projection, config = row
    matrix = _unpack(projection)
    return ItemSpace(
        version=version,
        max_len=int(config["max_len"]),
        vocabulary=tuple(vocabulary),
        item_embeddings=_unpack(embeddings),
        projection_weight=matrix[:, :-1],
        projection_bias=matrix[:, -1],
    )


async def latest_version(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT coalesce(max(version), 0) FROM model_artifacts WHERE model_name = %s",
            (USER_ENCODER,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0
