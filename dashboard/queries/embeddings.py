"""Nearest items by content: the MiniLM embeddings of the catalogue (items.embedding) as
one matrix, searched by cosine similarity in memory.

Loading goes through binary COPY and is parsed with numpy in one step: psycopg's
row-by-row array parsing takes seconds for 50,000 x 384 floats, the COPY a fraction of a
second. The page keeps the matrix cached for minutes; a search is then a matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from psycopg import sql

from dashboard.queries import Connection

_HEADER = 19  # PGCOPY signature (11) + flags (4) + header extension length (4)
_TRAILER = 2
_ARRAY_HEADER = 20  # ndim, has-nulls flag, element type, dimension size, lower bound
_TUPLE_HEADER = 6  # field count (int16) + field length (int32)

_DIMENSION = """
SELECT cardinality(embedding) FROM items
WHERE deleted_at IS NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1
"""
# Live items with a complete embedding of the catalogue's dimension (the parse needs both).
_WHERE = sql.SQL(
    "deleted_at IS NULL AND cardinality(embedding) = {dim}"
    " AND array_position(embedding, NULL) IS NULL"
)


@dataclass(frozen=True)
class ContentIndex:
    """Item ids, titles and their L2-normalised content embeddings (one row per id)."""

    item_ids: tuple[str, ...]
    vectors: np.ndarray
    titles: tuple[str, ...] = ()

    def search(self, text: str, limit: int = 20) -> list[tuple[str, str]]:
        """(item_id, title) of the items whose title contains ``text`` (any case): in
        memory, because a substring scan of the wide items table costs a page view."""
        needle = text.casefold()
        found = [
            (item_id, title)
            for item_id, title in zip(self.item_ids, self.titles, strict=True)
            if needle in title.casefold()
        ]
        return found[:limit]

    def nearest(self, item_id: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` items most similar to ``item_id`` by content, with cosine
        similarities; empty when the item has no embedding."""
        try:
            row = self.item_ids.index(item_id)
        except ValueError:
            return []
        scores = self.vectors @ self.vectors[row]
        scores[row] = -np.inf
        k = min(k, len(scores) - 1)
        if k <= 0:
            return []
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        return [(self.item_ids[i], float(scores[i])) for i in best]


def load(conn: Connection) -> ContentIndex:
    """Every live item's embedding (of the catalogue's embedding dimension)."""
    with conn.transaction():
        # One snapshot for the ids and the vectors, so that their orders match.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        found = conn.execute(_DIMENSION).fetchone()
        if found is None:
            return ContentIndex((), np.zeros((0, 0), dtype=np.float32))
        dim = int(found[0])
        where = _WHERE.format(dim=sql.Literal(dim))
        select_ids = sql.SQL("SELECT item_id, title FROM items WHERE {} ORDER BY item_id")
        rows = conn.execute(select_ids.format(where)).fetchall()
        data = bytearray()
        copy_vectors = sql.SQL(
            "COPY (SELECT embedding FROM items WHERE {} ORDER BY item_id) TO STDOUT (FORMAT BINARY)"
        )
        with conn.cursor().copy(copy_vectors.format(where)) as copy:
            for chunk in copy:
                data += chunk
    vectors = _parse(bytes(data), len(rows), dim)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return ContentIndex(
        tuple(row[0] for row in rows),
        vectors / np.where(norms > 0, norms, 1.0),
        tuple(row[1] for row in rows),
    )


def _parse(data: bytes, rows: int, dim: int) -> np.ndarray:
    """Binary COPY of ``rows`` real[] values of ``dim`` non-null elements each: every
    element is a 4-byte length then a big-endian float4."""
    width = _TUPLE_HEADER + _ARRAY_HEADER + dim * 8
    body = np.frombuffer(data, dtype=np.uint8)[_HEADER : len(data) - _TRAILER]
    if body.size != rows * width:
        raise ValueError(f"unexpected COPY layout: {body.size} bytes for {rows} rows of {dim}")
    values = body.reshape(rows, width)[:, _TUPLE_HEADER + _ARRAY_HEADER :]
    floats = np.ascontiguousarray(values.reshape(rows, dim, 8)[:, :, 4:]).view(">f4")
    return floats.reshape(rows, dim).astype(np.float32)
