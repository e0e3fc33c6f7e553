"""Training the user encoder: next-item prediction with full softmax cross-entropy
over the whole catalogue (the SASRec+ objective), deterministic for a seed."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from serving.domain import NEGATIVE_EVENTS, EventType
from serving.models.user_encoder import UserEncoder, UserEncoderConfig

History = Sequence[tuple[str, EventType]]


@dataclass(frozen=True)
class TrainingResult:
    model: UserEncoder
    vocabulary: tuple[str, ...]
    losses: tuple[float, ...]
    """Mean training loss of each epoch."""
    seconds: float


def encode_histories(
    histories: Sequence[History], token: dict[str, int], length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (users, length) token and event-type tensors; unknown items dropped."""
    tokens = torch.zeros(len(histories), length, dtype=torch.long)
    types = torch.zeros(len(histories), length, dtype=torch.long)
    for row, history in enumerate(histories):
        known = [(token[i], int(t)) for i, t in history if i in token][-length:]
        if known:
            tokens[row, length - len(known) :] = torch.tensor([k for k, _ in known])
            types[row, length - len(known) :] = torch.tensor([t for _, t in known])
    return tokens, types


def train_user_encoder(
    histories: Sequence[History],
    item_ids: Sequence[str],
    content: np.ndarray,
    config: UserEncoderConfig,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> TrainingResult:
    """Train on ``histories`` (oldest first) over the catalogue ``item_ids``/``content``.

    Every position predicts the next positive interaction; SKIP/DISLIKE items are
    inputs (they inform the state) but never targets.
    """
    started = time.perf_counter()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    vocabulary = tuple(item_ids)
    token = {item_id: i + 1 for i, item_id in enumerate(vocabulary)}
    tokens, types = encode_histories(histories, token, config.max_len + 1)
    # Row 0 (padding / unknown) has no content.
    content_table = torch.cat(
        [torch.zeros(1, content.shape[1]), torch.from_numpy(content.astype(np.float32))]
    )
    model = UserEncoder(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    all_tokens = torch.arange(len(vocabulary) + 1)
    negative = torch.tensor([int(t) for t in NEGATIVE_EVENTS])
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(tokens), generator=generator)
        total, batches = 0.0, 0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            inputs, input_types = tokens[batch, :-1], types[batch, :-1]
            targets, target_types = tokens[batch, 1:], types[batch, 1:]
            valid = (target_types > 0) & (input_types > 0) & ~torch.isin(target_types, negative)
            if not valid.any():
                continue
            hidden, _ = model(inputs, input_types, content_table[inputs])
            items = model.item_vectors(all_tokens, content_table)
            logits = hidden[valid] @ items.T
            logits[:, 0] = -math.inf  # never predict padding
            loss = F.cross_entropy(logits, targets[valid])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item()
            batches += 1
        losses.append(total / max(batches, 1))
        if progress is not None:
            progress(epoch + 1, losses[-1])
    model.eval()
    return TrainingResult(model, vocabulary, tuple(losses), time.perf_counter() - started)
