"""Content embeddings of a dataset's items, computed in-process with the content encoder.

Training runs offline, so it does not need Triton for this; the encoder is the same
module and folder (``RECSYS_CONTENT_MODEL``, default the bundled MiniLM) Triton serves,
so the vectors match the serving path. Results are cached by the encoder's fingerprint
and a hash of the texts, because encoding a catalogue takes seconds to minutes and
repeated runs over one dataset are the norm.
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
    model_dir: Path | None = None,
) -> np.ndarray:
    """(num_items, dim) embeddings of ``dataset.texts`` by the sentence-transformers folder
    ``model_dir`` (default the bundled MiniLM), or the ones the dataset carries."""
    if dataset.content is not None:
        return dataset.content
    from serving.adapters.triton.content_model import ContentModel

    key = f"{ContentModel.load(model_dir).fingerprint}-{texts_key(dataset.texts)}"
    cache = cache_dir / f"content-{key}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        return np.load(cache)
    from serving.models.content_encoder import ContentEncoder

    encoder = ContentEncoder(model_dir)
    chunks = []
    for start in range(0, len(dataset.texts), CHUNK):
        chunk = list(dataset.texts[start : start + CHUNK])
        chunks.append(encoder.encode(chunk))
        if advance is not None:
            advance(len(chunk))
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, embeddings)
    return embeddings
