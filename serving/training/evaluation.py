"""Offline evaluation under the protocol of the sequential-recommendation literature.

Leave-one-out (see ``datasets.leave_one_out``), every target ranked against **all**
items, the user's other already-seen items removed from the ranking. Ties count against
the target (an item scoring the same is ranked above it), so a model that scores
everything alike gets no credit by luck of ordering.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from serving.core.newitems import (
    calibrated_new_scores,
    content_profile,
    recent_positive,
    reference_sample,
    unit_rows,
)
from serving.models.user_encoder import UserEncoder
from serving.training.datasets import Split
from serving.training.trainer import left_pad

CUTOFFS = (10, 20)
SCORE_BATCH = 256


class Scorer(Protocol):
    """Anything that scores every catalogue item for a batch of users' inputs."""

    def scores(self, inputs: Sequence[np.ndarray], types: Sequence[np.ndarray]) -> np.ndarray:
        """(users, num_items) scores; column j is the item with token j + 1."""
        ...


def ranks(scores: np.ndarray, targets: np.ndarray, seen: Sequence[np.ndarray]) -> np.ndarray:
    """0-based rank of each target token among all items, seen items (but the target)
    removed, ties counted against the target. ``scores`` columns are tokens - 1."""
    scores = scores.astype(np.float64, copy=True)
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets - 1]
    for row, items in enumerate(seen):
        scores[row, np.asarray(items, np.int64) - 1] = -np.inf
    scores[rows, targets - 1] = -np.inf  # the target does not outrank itself
    return (scores >= target_scores[:, None]).sum(axis=1)


def top_k(scores: np.ndarray, seen: Sequence[np.ndarray], k: int) -> np.ndarray:
    """(users, k) tokens of the k best unseen items per row, best first."""
    scores = scores.astype(np.float64, copy=True)
    for row, items in enumerate(seen):
        scores[row, np.asarray(items, np.int64) - 1] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1) + 1


@dataclass(frozen=True)
class Report:
    """Mean metrics over the evaluated users."""

    users: int
    metrics: dict[str, float]

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]


def metrics_from_ranks(
    rank: np.ndarray, recommended: np.ndarray, num_items: int, cutoffs: Sequence[int] = CUTOFFS
) -> dict[str, float]:
    """HR@K, NDCG@K (one relevant item: 1 / log2(rank + 2) when within K) and catalogue
    coverage@K (share of items in at least one user's top K)."""
    out: dict[str, float] = {}
    for k in cutoffs:
        hit = rank < k
        out[f"HR@{k}"] = float(hit.mean()) if len(rank) else 0.0
        gains = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
        out[f"NDCG@{k}"] = float(gains.mean()) if len(rank) else 0.0
        out[f"coverage@{k}"] = len(np.unique(recommended[:, :k])) / num_items
    return out


def evaluate(
    scorer: Scorer, split: Split, num_items: int, cutoffs: Sequence[int] = CUTOFFS
) -> Report:
    """Metrics of ``scorer`` on ``split`` (validation or test)."""
    all_ranks, tops = [], []
    deepest = max(cutoffs)
    for start in range(0, len(split.targets), SCORE_BATCH):
        end = start + SCORE_BATCH
        inputs, types = split.inputs[start:end], split.input_types[start:end]
        scores = scorer.scores(inputs, types)
        all_ranks.append(ranks(scores, split.targets[start:end], inputs))
        tops.append(top_k(scores, inputs, deepest))
    rank = np.concatenate(all_ranks) if all_ranks else np.zeros(0, np.int64)
    recommended = np.concatenate(tops) if tops else np.zeros((0, deepest), np.int64)
    return Report(len(rank), metrics_from_ranks(rank, recommended, num_items, cutoffs))


def ndcg_at_10(scorer: Scorer, split: Split, num_items: int) -> float:
    """The early-stopping criterion."""
    return evaluate(scorer, split, num_items, cutoffs=(10,))["NDCG@10"]


class ModelScorer:
    """The user encoder: last position's output against every item vector, items without
    a learned embedding (newer than the model) set on the known items' scale as the
    orchestrator sets them (``serving.core.newitems``, with the ``new_item_confidence``
    parameter's value; ``calibrate_new=False``: raw scores)."""

    def __init__(
        self,
        model: UserEncoder,
        content: torch.Tensor,
        device: str = "cpu",
        calibrate_new: bool = True,
        new_item_confidence: float = 1.0,
    ) -> None:
        self.model = model
        self.device = torch.device(device)
        self.content = content.to(self.device)
        self.confidence = new_item_confidence
        tokens = torch.arange(1, model.config.num_items + 1, device=self.device)
        with torch.inference_mode():
            model = model.to(self.device)
            self.items = model.item_vectors(tokens, self.content[tokens])
            learned = model.item_embedding.weight[1:].detach().float().cpu().numpy()
            # Columns (token - 1) of the items placed by text alone, and the known ones
            # whose content parts set their scale.
            has_learned = np.any(learned != 0, axis=1)
            self.unlearned = np.flatnonzero(~has_learned) if calibrate_new else np.zeros(0, int)
            self.reference = reference_sample(np.flatnonzero(has_learned))
            reference_tokens = torch.from_numpy(self.reference + 1).to(self.device)
            self.projected = model.content_projection(self.content[reference_tokens])
        self.unit_content = unit_rows(content[1:].float().numpy())

    @torch.inference_mode()
    def scores(self, inputs: Sequence[np.ndarray], types: Sequence[np.ndarray]) -> np.ndarray:
        self.model.eval()
        width = min(self.model.config.max_len, max((len(s) for s in inputs), default=1))
        tokens, kinds = left_pad(inputs, types, max(width, 1))
        tokens, kinds = tokens.to(self.device), kinds.to(self.device)
        hidden, _ = self.model(tokens, kinds, self.content[tokens])
        users = hidden[:, -1].float()
        scores = (users @ self.items.float().T).cpu().numpy()
        if len(self.unlearned) and len(self.reference) >= 2:
            content_part = (users @ self.projected.float().T).cpu().numpy()
            similarity = self._profiles(inputs, types) @ self.unit_content.T
            scores[:, self.unlearned] = calibrated_new_scores(
                scores[:, self.unlearned],
                scores[:, self.reference],
                content_part,
                self.confidence,
                (similarity[:, self.unlearned], similarity[:, self.reference]),
            )
        return scores

    def _profiles(self, inputs: Sequence[np.ndarray], types: Sequence[np.ndarray]) -> np.ndarray:
        """(users, content dim) what each user's latest positive items are about (zeros
        for a user with none: no similarity evidence)."""
        profiles = np.zeros((len(inputs), self.unit_content.shape[1]), np.float32)
        for row, (sequence, kinds) in enumerate(zip(inputs, types, strict=True)):
            recent = recent_positive(list(sequence), list(kinds))
            profile = content_profile(self.unit_content[np.asarray(recent, np.int64) - 1])
            if profile is not None:
                profiles[row] = profile
        return profiles


def format_table(rows: dict[str, Report]) -> list[list[str]]:
    """Rows of strings (name, users, then each metric) for a printed table."""
    table = []
    for name, report in rows.items():
        values = [f"{v:.4f}" if not math.isnan(v) else "-" for v in report.metrics.values()]
        table.append([name, str(report.users), *values])
    return table
