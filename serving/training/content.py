"""Content embeddings of a dataset's items, computed in-process with the MiniLM encoder.

Training runs offline, so it does not need Triton for this; the encoder is the same
module (and weights) Triton serves, so the vectors match the serving path. Results are
cached by a hash of the texts, because encoding a catalogue takes seconds to minutes
and repeated runs over one dataset are the norm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from serving.training.datasets import Dataset

CHUNK = 256


def texts_key(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:24]


def embed_items(
    dataset: Dataset,
    cache_dir: Path | None = None,
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(num_items, 384) embeddings of ``dataset.texts`` (or the ones it carries)."""
    if dataset.content is not None:
        return dataset.content
    cache = cache_dir / f"content-{texts_key(dataset.texts)}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        return np.load(cache)
    from serving.models.content_encoder import ContentEncoder

    encoder = ContentEncoder()
    chunks = []
    for start in range(0, len(dataset.texts), CHUNK):
        chunk = list(dataset.texts[start : start + CHUNK])
        chunks.append(encoder.encode(chunk))
        if advance is not None:
            advance(len(chunk))
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, 384), np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, embeddings)
    return embeddings
