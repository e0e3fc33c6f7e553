"""Export a trained user encoder as a new Triton model version, with its item space and
the content encoder it was trained with (recorded with the item space, so the
orchestrator never pairs it with another encoder's item vectors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres import artifacts
from serving.adapters.triton import repository
from serving.core import bfloat16
from serving.core.encoders import ContentEncoderId
from serving.core.itemspace import ItemSpace
from serving.models.user_encoder import UserEncoder


def item_space(
    model: UserEncoder,
    vocabulary: tuple[str, ...],
    content: np.ndarray,
    version: int,
    content_encoder: ContentEncoderId | None = None,
) -> ItemSpace:
    """What the orchestrator needs to score items the way ``model`` does; ``content`` is
    the vocabulary's (len(vocabulary), content_dim) content embeddings as trained."""
    if content.shape != (len(vocabulary), model.config.content_dim):
        raise ValueError(
            f"content is {content.shape}; the vocabulary needs"
            f" ({len(vocabulary)}, {model.config.content_dim})"
        )
    # Content as the item index holds it, as the model was trained on (content_table).
    known = model.known_item_vectors(torch.from_numpy(bfloat16.rounded(content)))
    weights = model.item_embedding.weight.detach().cpu().numpy()[1:]
    projection = model.content_projection
    return ItemSpace(
        version=version,
        max_len=model.config.max_len,
        vocabulary=vocabulary,
        item_embeddings=weights,
        projection_weight=projection.weight.detach().cpu().numpy(),
        projection_bias=projection.bias.detach().cpu().numpy(),
        content_encoder=content_encoder,
        known_vectors=known[1:].cpu().numpy(),
    )


async def export_user_encoder(
    pool: AsyncConnectionPool,
    model_repository: Path,
    model: UserEncoder,
    vocabulary: tuple[str, ...],
    content: np.ndarray,
    metrics: dict[str, Any],
    content_encoder: ContentEncoderId | None = None,
) -> int:
    """Write the next version: item space to PostgreSQL first, then the version folder
    (so whichever version Triton loads, its item space is already stored). The content
    encoder ``model`` was trained with is recorded in both; ``content`` is the
    vocabulary's content as trained (both hold the items' vectors made with it)."""
    if content_encoder is not None and content_encoder.dim != model.config.content_dim:
        raise ValueError(
            f"the model takes {model.config.content_dim}-d content, {content_encoder} is"
            f" {content_encoder.dim}-d"
        )
    on_disk = repository.versions(model_repository, repository.USER_ENCODER)
    version = max([*on_disk, await artifacts.latest_version(pool)], default=0) + 1
    space = item_space(model, vocabulary, content, version, content_encoder)
    await artifacts.save_item_space(pool, space, metrics)
    written = repository.write_user_encoder_version(
        model_repository, model, version, content_encoder, space.known_vectors
    )
    assert written == version
    return version
