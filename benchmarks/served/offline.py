"""The offline side of the comparison, in-process and by the evaluation's own code: the
run's top ``k`` per test user (to see where served lists differ, not only by how much),
the cold split, and the cold run trained as ``benchmarks.quality --cold-items`` trains it.
"""

from __future__ import annotations

import numpy as np

from serving.models.user_encoder import UserEncoderConfig
from serving.training import datasets, evaluation, pipeline
from serving.training.runs import Run
from serving.training.trainer import TrainingOptions


def scorer(run: Run, dataset: datasets.Dataset, device: str = "cpu") -> evaluation.Scorer:
    """The run scored as ``recsys eval`` scores it."""
    return pipeline.model_scorers(dataset, {"run": run}, device)["run"]


def report(score: evaluation.Scorer, split: datasets.Split, num_items: int) -> evaluation.Report:
    return evaluation.evaluate(score, split, num_items, cutoffs=(10,))


def top_lists(score: evaluation.Scorer, split: datasets.Split, k: int) -> np.ndarray:
    """(users, k) tokens of each test user's offline top ``k``, seen items removed."""
    rows = []
    for start in range(0, len(split.targets), evaluation.SCORE_BATCH):
        inputs = split.inputs[start : start + evaluation.SCORE_BATCH]
        types = split.input_types[start : start + evaluation.SCORE_BATCH]
        rows.append(evaluation.top_k(score.scores(inputs, types), inputs, k))
    return np.concatenate(rows) if rows else np.zeros((0, k), np.int64)


def cold_split(dataset: datasets.Dataset, cold: np.ndarray) -> datasets.Split:
    """The test users whose target is one of the ``cold`` items (tokens)."""
    return datasets.with_targets_in(datasets.leave_one_out(dataset, "test"), cold)


def train_cold(dataset: datasets.Dataset, content: np.ndarray, like: Run, cold: np.ndarray) -> Run:
    """A run with the recipe of ``like`` (its shape and options) trained as if ``cold``
    did not exist yet: their learned embeddings are zero, as the orchestrator serves
    items newer than the model (``pipeline.train_run(cold=...)``)."""
    config = UserEncoderConfig(**like.model.config.to_dict())  # type: ignore[arg-type]
    options = TrainingOptions(**like.record["options"])
    run = pipeline.train_run(dataset, content, config, options, cold=cold)
    run.record["source"] = like.record.get("source")
    return run
