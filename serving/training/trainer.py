"""Training the user encoder: next-item prediction at every position of every sequence.

Two objectives (``TrainingOptions.loss``):

- ``full``: softmax cross-entropy over the whole catalogue (the SASRec+ objective of
  Klenitskiy & Vasilev, RecSys 2023), the strongest on catalogues of a few thousand
  to a few hundred thousand items;
- ``sampled``: softmax over the target and ``negatives`` uniformly sampled items shared
  by the batch (gSASRec-style many negatives), for catalogues too large for ``full``.

Deterministic for a seed on CPU; early stopping keeps the weights of the best
validation score, and an optional time budget stops before an epoch that would not fit.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from serving.core import bfloat16
from serving.core.domain import NEGATIVE_EVENTS, EventType
from serving.models.user_encoder import UserEncoder, UserEncoderConfig

History = Sequence[tuple[str, EventType]]
LOSSES = ("full", "sampled")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("fp32", "bf16")
# Batches are drawn from chunks of this many batches sorted by length: most padding is
# cut from each batch while the order stays random.
BUCKET_BATCHES = 32


@dataclass(frozen=True)
class TrainingOptions:
    """How to train (the model's shape is ``UserEncoderConfig``)."""

    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"
    """Learning rate over the epochs: "constant", or "cosine" (linear warm-up over
    ``warmup_steps``, then cosine decay to zero at ``epochs``), which helps most when the
    epoch count is set by a time budget."""
    warmup_steps: int = 100
    loss: str = "full"
    negatives: int = 256
    """Sampled negatives per batch when ``loss == "sampled"``."""
    patience: int = 10
    """Validations without improvement before stopping."""
    eval_every: int = 1
    """Epochs between validations."""
    time_budget_s: float | None = None
    """Stop before an epoch that would end past this many seconds of training."""
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    """"bf16": matrix products in bfloat16 under autocast (weights, softmax and the
    optimizer stay fp32): faster on a GPU or a CPU with AVX512-BF16; without those it
    can be slower."""

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingResult:
    model: UserEncoder
    vocabulary: tuple[str, ...]
    losses: tuple[float, ...]
    """Mean training loss of each epoch."""
    seconds: float
    validation: tuple[tuple[int, float], ...] = ()
    """(epoch, validation score) of each validation."""
    best_epoch: int = 0
    """Epoch whose weights the model has (the last one without validation)."""
    stopped: str = "epochs"
    """Why training ended: "epochs", "early stopping" or "time budget"."""
    extra: dict[str, object] = field(default_factory=dict)


Validate = Callable[[UserEncoder], float]
Progress = Callable[[int, float], None]


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def left_pad(
    sequences: Sequence[np.ndarray], types: Sequence[np.ndarray], length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(users, length) tensors of the last ``length`` tokens and event types, left-padded."""
    tokens = torch.zeros(len(sequences), length, dtype=torch.long)
    kinds = torch.zeros(len(sequences), length, dtype=torch.long)
    for row, (sequence, kind) in enumerate(zip(sequences, types, strict=True)):
        tail = sequence[-length:]
        if len(tail):
            tokens[row, length - len(tail) :] = torch.from_numpy(np.asarray(tail, np.int64))
            kinds[row, length - len(tail) :] = torch.from_numpy(
                np.asarray(kind[-length:], np.int64)
            )
    return tokens, kinds


def encode_histories(
    histories: Sequence[History], token: dict[str, int], length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (users, length) token and event-type tensors; unknown items dropped."""
    sequences, types = [], []
    for history in histories:
        known = [(token[i], int(t)) for i, t in history if i in token]
        sequences.append(np.array([k for k, _ in known], np.int64))
        types.append(np.array([t for _, t in known], np.int64))
    return left_pad(sequences, types, length)


def content_table(content: np.ndarray) -> torch.Tensor:
    """(items + 1, dim) content embeddings by token; row 0 (padding / unknown) is zero.
    Rounded to bfloat16 as the orchestrator's item index holds them, so that a model is
    trained and evaluated on the content it is served with."""
    held = torch.from_numpy(bfloat16.rounded(content))
    return torch.cat([torch.zeros(1, content.shape[1]), held])


def _batches(lengths: torch.Tensor, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(len(lengths), generator=generator)
    batches: list[torch.Tensor] = []
    chunk = size * BUCKET_BATCHES
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[torch.argsort(lengths[part], stable=True)]
        batches.extend(part[i : i + size] for i in range(0, len(part), size))
    shuffled = torch.randperm(len(batches), generator=generator)
    return [batches[int(i)] for i in shuffled]


def _loss(
    model: UserEncoder,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    table: torch.Tensor,
    options: TrainingOptions,
    generator: torch.Generator,
    absent: torch.Tensor,
) -> torch.Tensor:
    """Cross-entropy of the targets against the whole catalogue or sampled negatives;
    ``absent`` tokens (padding, items that do not exist yet) are never candidates."""
    num_items = model.config.num_items
    if options.loss == "full":
        tokens = torch.arange(num_items + 1, device=hidden.device)
        logits = hidden @ model.item_vectors(tokens, table).T
        logits[:, absent] = -math.inf
        return F.cross_entropy(logits, targets)
    negatives = torch.randint(1, num_items + 1, (options.negatives,), generator=generator)
    negatives = negatives.to(hidden.device)
    positive = (hidden * model.item_vectors(targets, table[targets])).sum(-1, keepdim=True)
    negative = hidden @ model.item_vectors(negatives, table[negatives]).T
    excluded = (negatives[None] == targets[:, None]) | torch.isin(negatives, absent)[None]
    negative = negative.masked_fill(excluded, -math.inf)
    logits = torch.cat([positive, negative], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(targets))


def lr_schedule(
    optimizer: torch.optim.Optimizer, options: TrainingOptions, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total = max(options.epochs * steps_per_epoch, 1)
    warmup = max(min(options.warmup_steps, total // 10), 1)

    def factor(step: int) -> float:
        if options.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total) / max(total - warmup, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(
    tokens: torch.Tensor,
    types: torch.Tensor,
    content: torch.Tensor,
    config: UserEncoderConfig,
    options: TrainingOptions,
    *,
    validate: Validate | None = None,
    progress: Progress | None = None,
    on_validation: Callable[[int, float], None] | None = None,
    absent: np.ndarray | None = None,
) -> tuple[UserEncoder, list[float], list[tuple[int, float]], int, str]:
    """Train on left-padded (users, max_len + 1) ``tokens``/``types`` whose every
    position predicts the next; ``content`` is the (items + 1, dim) table by token.

    ``absent`` (tokens): items that do not exist yet (the cold-start protocol's new
    items). They are no candidate of the softmax and keep a zero learned embedding: an
    item added after training was never a negative either, and one that was would have
    taught the projection to push its content down.

    SKIP/DISLIKE items are inputs (they inform the state) but never targets.
    Returns the model (best validated weights), epoch losses, validations, the epoch of
    the weights and why training stopped.
    """
    started = time.perf_counter()
    generator = seed_everything(options.seed)
    device = torch.device(options.device)
    model = UserEncoder(config).to(device)
    model.bound_corrections()
    excluded = torch.from_numpy(np.concatenate([[0], absent if absent is not None else []]))
    excluded = excluded.to(torch.long).to(device)
    with torch.no_grad():
        model.item_embedding.weight[excluded] = 0.0  # no gradient reaches them after this
    table = content.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay
    )
    negative = torch.tensor([int(t) for t in NEGATIVE_EVENTS])
    lengths = (types > 0).sum(dim=1)
    scheduler = lr_schedule(optimizer, options, math.ceil(len(tokens) / options.batch_size))
    losses: list[float] = []
    validations: list[tuple[int, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor] | None] = (-math.inf, 0, None)
    stopped, epoch_seconds = "epochs", 0.0
    for epoch in range(1, options.epochs + 1):
        elapsed = time.perf_counter() - started
        if options.time_budget_s is not None and elapsed + epoch_seconds > options.time_budget_s:
            stopped = "time budget"
            break
        epoch_started = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for batch in _batches(lengths, options.batch_size, generator):
            width = int(lengths[batch].max())
            if width < 2:
                continue
            rows, kinds = tokens[batch, -width:], types[batch, -width:]
            inputs, input_types = rows[:, :-1].to(device), kinds[:, :-1].to(device)
            targets, target_types = rows[:, 1:].to(device), kinds[:, 1:]
            valid = (target_types > 0) & (kinds[:, :-1] > 0) & ~torch.isin(target_types, negative)
            if not valid.any():
                continue
            valid = valid.to(device)
            with torch.autocast(device.type, torch.bfloat16, enabled=options.precision == "bf16"):
                hidden, _ = model(inputs, input_types, table[inputs])
                loss = _loss(
                    model, hidden[valid], targets[valid], table, options, generator, excluded
                )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            model.bound_corrections()  # projected step: the bound holds after every update
            scheduler.step()
            total += loss.item()
            count += 1
        losses.append(total / max(count, 1))
        if progress is not None:
            progress(epoch, losses[-1])
        if validate is not None and epoch % options.eval_every == 0:
            model.eval()
            score = validate(model)
            validations.append((epoch, score))
            if on_validation is not None:
                on_validation(epoch, score)
            if score > best[0]:
                best = (score, epoch, copy.deepcopy(model.state_dict()))
            elif len(validations) - [e for e, _ in validations].index(best[1]) > options.patience:
                stopped = "early stopping"
                epoch_seconds = time.perf_counter() - epoch_started
                break
        epoch_seconds = time.perf_counter() - epoch_started
    best_epoch = len(losses)
    if best[2] is not None:
        model.load_state_dict(best[2])
        best_epoch = best[1]
    model.eval()
    return model.cpu(), losses, validations, best_epoch, stopped


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
    progress: Progress | None = None,
) -> TrainingResult:
    """Train on ``histories`` (oldest first) over the catalogue ``item_ids``/``content``
    with the full-softmax objective and no validation (the demo model's path)."""
    started = time.perf_counter()
    vocabulary = tuple(item_ids)
    token = {item_id: i + 1 for i, item_id in enumerate(vocabulary)}
    tokens, types = encode_histories(histories, token, config.max_len + 1)
    options = TrainingOptions(
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=0.01, seed=seed
    )
    model, losses, _, _, _ = fit(
        tokens, types, content_table(content), config, options, progress=progress
    )
    return TrainingResult(model, vocabulary, tuple(losses), time.perf_counter() - started)
