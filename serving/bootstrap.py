"""First-run work: the demo catalogue, and a first user encoder trained on demo histories.

Both steps are skipped when their result already exists, so a second start reuses data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres import items as item_store
from serving.adapters.triton import repository
from serving.adapters.triton.client import TritonEncoders
from serving.core.domain import Item
from serving.core.encoders import ContentEncoderId
from serving.core.index import StoredItem
from serving.models.user_encoder import UserEncoderConfig
from serving.training.export import export_user_encoder
from serving.training.trainer import train_user_encoder

log = logging.getLogger(__name__)
Progress = Callable[[int], None]
EMBED_CHUNK = 256
DEMO_EPOCHS = 8


async def seed_catalogue(
    pool: AsyncConnectionPool,
    encoders: TritonEncoders,
    items: list[Item],
    advance: Progress | None = None,
) -> int:
    """Embed ``items`` through Triton and store them, unless the catalogue has items."""
    if await item_store.count_items(pool):
        return 0
    for start in range(0, len(items), EMBED_CHUNK):
        chunk = items[start : start + EMBED_CHUNK]
        embeddings = await encoders.encode_texts([item.text() for item in chunk], timeout_s=300)
        await item_store.upsert_items(pool, chunk, embeddings, encoders.content_fingerprint)
        if advance is not None:
            advance(len(chunk))
    return len(items)


async def train_demo_user_encoder(
    pool: AsyncConnectionPool,
    model_repository: Path,
    *,
    users: int = 1500,
    history_length: int = 50,
    epochs: int = DEMO_EPOCHS,
    seed: int = 0,
    load_into: TritonEncoders | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> int | None:
    """Train and export a first version on synthetic histories over the catalogue's
    categories when no version exists, and have ``load_into``'s Triton load it.

    A cold-start model; returns the exported version, or None when one already existed.
    """
    from serving.demo.tastes import make_tastes, synthetic_histories

    if repository.versions(model_repository, repository.USER_ENCODER):
        return None
    stored = [s for s in await item_store.items_changed_since(pool, None) if not s.deleted]
    if not stored:
        raise RuntimeError("the catalogue is empty: seed it before training")
    catalogue = [s.item for s in stored]
    categories = sorted({c for item in catalogue for c in item.categories})
    tastes = make_tastes(users, categories, seed=seed)
    histories = synthetic_histories(catalogue, tastes, length=history_length + 1, seed=seed)
    content = np.stack([s.embedding for s in stored])
    config = UserEncoderConfig(
        num_items=len(catalogue), max_len=history_length, content_dim=content.shape[1]
    )
    result = train_user_encoder(
        histories,
        [item.item_id for item in catalogue],
        content,
        config,
        epochs=epochs,
        seed=seed,
        progress=on_epoch,
    )
    metrics = {"source": "demo", "losses": list(result.losses), "seconds": result.seconds}
    encoder = await _catalogue_encoder(stored, load_into)
    version = await export_user_encoder(
        pool, model_repository, result.model, result.vocabulary, content, metrics, encoder
    )
    log.info("exported user_encoder v%d (%.1fs of training)", version, result.seconds)
    if load_into is not None:
        await load_into.load(repository.USER_ENCODER)
    return version


async def _catalogue_encoder(
    stored: list[StoredItem], encoders: TritonEncoders | None
) -> ContentEncoderId | None:
    """The content encoder of the vectors the model was trained on (when the catalogue
    records one encoder for all of them), named as Triton names it when it serves it."""
    labels = {s.encoder for s in stored}
    if len(labels) != 1 or not next(iter(labels)):
        return None
    fingerprint = next(iter(labels))
    served = await encoders.content_encoder() if encoders is not None else None
    if served is not None and served.fingerprint == fingerprint:
        return served
    return ContentEncoderId("", int(stored[0].embedding.shape[0]), fingerprint)
