"""`recsys reembed`: the catalogue re-embedded by the content encoder Triton serves.

Run it after pointing ``RECSYS_CONTENT_MODEL`` at another sentence-transformers folder
(`recsys prepare-models`, Triton reloaded). Vectors are computed through Triton in
batches and staged (committed per batch, so a stopped run resumes); the catalogue then
switches to them in one transaction (serving/adapters/postgres/embedding_sets.py), with
the encoder's fingerprint recorded on every row. The orchestrators' index refresh picks
the switch up whole and, until a user encoder trained with the new encoder is exported,
serves the fallback (serving/app/sync.py says why in its log).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool
from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as Bar

from serving.adapters.postgres import embedding_sets
from serving.adapters.triton.client import TritonEncoders
from serving.config import Settings
from serving.core.encoders import ContentEncoderId

BATCH = 256
MAX_PASSES = 3
"""A pass re-embeds what was written while the previous one ran; a busy catalogue may
need a second, rarely a third."""


@dataclass(frozen=True)
class Reembedded:
    encoder: ContentEncoderId
    embedded: int
    """Vectors computed through Triton (items already staged by a stopped run excluded)."""
    switched: int
    remaining: int
    """Items still not of the encoder (written with another one during every pass)."""


class ReembedError(RuntimeError):
    """Triton cannot say (or changed) which content encoder it serves."""


@dataclass
class Progress:
    """Where the progress bar goes: ``total(n)`` once per pass, ``advance(n)`` per batch."""

    total: Callable[[int], None] = lambda n: None
    advance: Callable[[int], None] = lambda n: None


async def reembed(
    pool: AsyncConnectionPool,
    encoders: TritonEncoders,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> Reembedded:
    """Re-embed every item whose vector is not of Triton's content encoder."""
    progress = progress or Progress()
    encoder = await _served(encoders)
    embedded = switched = 0
    for _ in range(MAX_PASSES):
        todo = await embedding_sets.not_of(pool, encoder.fingerprint)
        if not todo:
            break
        done = await embedding_sets.staged(pool, encoder.fingerprint)
        fresh = [s for s in todo if done.get(s.item.item_id) != s.updated_at]
        progress.total(len(todo))
        progress.advance(len(todo) - len(fresh))
        for start in range(0, len(fresh), batch_size):
            batch = fresh[start : start + batch_size]
            vectors = await encoders.encode_texts([s.item.text() for s in batch], timeout_s=300)
            if vectors.shape[1] != encoder.dim or await _served(encoders) != encoder:
                raise ReembedError(
                    f"Triton's content encoder changed during the run (was {encoder}):"
                    " run `recsys reembed` again"
                )
            await embedding_sets.stage(pool, encoder.fingerprint, batch, vectors)
            embedded += len(batch)
            progress.advance(len(batch))
        switched += await embedding_sets.switch(pool, encoder.fingerprint)
    remaining = len(await embedding_sets.not_of(pool, encoder.fingerprint))
    return Reembedded(encoder, embedded, switched, remaining)


async def _served(encoders: TritonEncoders) -> ContentEncoderId:
    encoder = await encoders.content_encoder()
    if encoder is None:
        raise ReembedError(
            "Triton does not say which content encoder it serves: is it running, with a"
            " repository rendered by `recsys prepare-models`?"
        )
    return encoder


def run_reembed(settings: Settings, database_url: str, batch_size: int = BATCH) -> Reembedded:
    """``reembed`` against the configured PostgreSQL and Triton, with a progress bar."""
    from serving.adapters.postgres.db import open_pool

    async def main(bar: Bar) -> Reembedded:
        task = bar.add_task("re-embedding the catalogue", total=None)
        pool = await open_pool(database_url, 2)
        encoders = TritonEncoders(settings.triton_grpc_url, timeout_ms=60_000)
        try:
            return await reembed(
                pool,
                encoders,
                batch_size,
                Progress(
                    total=lambda n: bar.reset(task, total=n),
                    advance=lambda n: bar.advance(task, n),
                ),
            )
        finally:
            await encoders.close()
            await pool.close()

    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Bar(*Bar.get_default_columns()[:1], *columns) as bar:
        return asyncio.run(main(bar))
