"""The offline loop's two steps: a dataset -> a trained run; runs + baselines -> a report.

Shared by the ``recsys train`` / ``recsys eval`` commands and ``benchmarks/quality`` so
the figures in the results table come from the code users run.
"""

from __future__ import annotations

import copy
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import torch

from serving.models.cold_start import impute_item_vectors
from serving.models.user_encoder import UserEncoderConfig
from serving.training import baselines, datasets, evaluation, trainer
from serving.training.runs import Run

POPULARITY = "popularity"
EASE = "EASE"
CONTENT = "content similarity"
RARE_MAX = 100
"""Test targets in at most this many training interactions are also reported apart."""


@dataclass(frozen=True)
class Hooks:
    """Progress callbacks (the CLI draws bars with them)."""

    epoch: Callable[[int, float], None] | None = None
    validation: Callable[[int, float], None] | None = None


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_run(
    dataset: datasets.Dataset,
    content: np.ndarray,
    config: UserEncoderConfig,
    options: trainer.TrainingOptions,
    *,
    use_content: bool = True,
    hooks: Hooks = Hooks(),
    record: dict[str, object] | None = None,
    cold: np.ndarray | None = None,
) -> Run:
    """Train on every user's sequence but the last two items, with early stopping on
    validation NDCG@10 (target: the second-to-last item). ``use_content=False`` trains
    the ID-only ablation (the content input is zero).

    ``cold`` (tokens): train as if those items did not exist yet, then give them what
    serving gives items newer than the model: no learned embedding, content only.
    """
    if cold is not None:
        dataset = datasets.without_items(dataset, cold)
        record = {**(record or {}), "cold_items": cold.tolist()}
    if not use_content:
        # The ablation is the plain ID model: nothing for a bounded correction to correct.
        config = replace(config, correction_norm=None)
    started = time.perf_counter()
    used = content if use_content else np.zeros_like(content)
    table = trainer.content_table(used)
    sequences, types = datasets.training_sequences(dataset)
    tokens, kinds = trainer.left_pad(sequences, types, config.max_len + 1)
    valid = datasets.leave_one_out(dataset, "valid")

    def validate(model: torch.nn.Module) -> float:
        # Items absent from training are not in the validation data's world either.
        scorer = evaluation.ModelScorer(
            model,  # type: ignore[arg-type]
            table,
            options.device,
            calibrate_new=False,
        )
        return evaluation.ndcg_at_10(scorer, valid, dataset.num_items)

    model, losses, validations, best_epoch, stopped = trainer.fit(
        tokens,
        kinds,
        table,
        config,
        options,
        validate=validate if len(valid.targets) else None,
        progress=hooks.epoch,
        on_validation=hooks.validation,
        absent=cold,
    )
    if not use_content:
        # Never trained on content: make it ignore content wherever it runs (served, the
        # orchestrator passes the real MiniLM vectors), as it did in training.
        with torch.no_grad():
            model.content_projection.weight.zero_()
    if cold is not None:
        with torch.no_grad():
            model.item_embedding.weight[torch.from_numpy(cold)] = 0.0
    seconds = time.perf_counter() - started
    return Run(
        model=model,
        vocabulary=dataset.item_ids,
        content=used,
        record={
            **(record or {}),
            **dataset.summary(),
            "use_content": use_content,
            "options": options.to_dict(),
            "losses": losses,
            "validation": validations,
            "best_epoch": best_epoch,
            "epochs_run": len(losses),
            "stopped": stopped,
            "train_seconds": round(seconds, 1),
            "peak_memory_mb": round(peak_memory_mb()),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


@dataclass(frozen=True)
class Comparison:
    """Test-set reports by name (our runs, then the baselines), with what was skipped."""

    reports: dict[str, evaluation.Report]
    notes: list[str] = field(default_factory=list)


def aligned(run: Run, dataset: datasets.Dataset) -> None:
    if run.vocabulary != dataset.item_ids:
        raise ValueError(
            "the run was trained on another catalogue than this dataset's "
            f"({len(run.vocabulary)} vs {len(dataset.item_ids)} items)"
        )


def model_scorers(
    dataset: datasets.Dataset, runs: dict[str, Run], device: str, calibrate_new: bool = True
) -> dict[str, evaluation.Scorer]:
    scorers: dict[str, evaluation.Scorer] = {}
    for name, run in runs.items():
        aligned(run, dataset)
        table = trainer.content_table(run.content)
        scorers[name] = evaluation.ModelScorer(run.model, table, device, calibrate_new)
    return scorers


def compare(
    dataset: datasets.Dataset,
    runs: dict[str, Run],
    *,
    with_baselines: bool = True,
    ease_l2: float = 500.0,
    device: str = "cpu",
    rare_max: int | None = RARE_MAX,
    content: np.ndarray | None = None,
) -> Comparison:
    """Every run and baseline on the test split (last item), ranked against all items;
    with ``rare_max``, each also on the users whose target is in at most that many
    training interactions (rows named "... · rare targets"). With ``content`` (the item
    embeddings), content similarity is one of the baselines."""
    test = datasets.leave_one_out(dataset, "test")
    rare = None if rare_max is None else datasets.with_targets_rarer_than(test, dataset, rare_max)
    scorers = model_scorers(dataset, runs, device)
    notes: list[str] = []
    if with_baselines:
        if content is not None:
            scorers[CONTENT] = baselines.ContentSimilarity(content)
        scorers[POPULARITY] = baselines.Popularity(test.inputs, dataset.num_items)
        try:
            scorers[f"{EASE} (λ={ease_l2:g})"] = baselines.EASE(
                test.inputs, dataset.num_items, l2=ease_l2
            )
        except baselines.TooLarge as error:
            notes.append(f"EASE skipped: {error}")
    reports = {name: evaluation.evaluate(s, test, dataset.num_items) for name, s in scorers.items()}
    if rare is not None and len(rare.targets):
        notes.append(
            f"rare targets: the {len(rare.targets)} test users whose target is in at most"
            f" {rare_max} training interactions"
        )
        for name, scorer in scorers.items():
            reports[f"{name} · rare targets"] = evaluation.evaluate(scorer, rare, dataset.num_items)
    return Comparison(reports, notes)


def with_imputed(run: Run, cold: np.ndarray, k: int) -> Run:
    """A copy of ``run`` whose ``cold`` items (tokens) get learned embeddings imputed from
    their k nearest known items by content, as when new items enter the index."""
    model = copy.deepcopy(run.model)
    weight = model.item_embedding.weight
    known = np.setdiff1d(np.arange(1, len(run.vocabulary) + 1), cold)
    imputed = impute_item_vectors(
        run.content[cold - 1], run.content[known - 1], weight[known].detach().numpy(), k
    )
    with torch.no_grad():
        weight[torch.from_numpy(cold)] = torch.from_numpy(imputed)
    return replace(run, model=model)


def compare_cold(
    dataset: datasets.Dataset,
    cold: np.ndarray,
    runs: dict[str, Run],
    content: np.ndarray,
    *,
    device: str = "cpu",
    impute: int | None = None,
) -> Comparison:
    """Runs trained with ``cold`` on the test users whose target is a cold item (rows named
    "... · cold items"), with content similarity as the baseline: popularity and EASE
    cannot rank an item nobody has interacted with; and on the other test users, whose
    target is a known item competing with the new ones (rows "... · known items"). Runs
    score new items calibrated, as served, and also raw (rows "... , raw new-item
    scores"). ``impute`` (k): each content run also scored with the cold items' learned
    embeddings imputed from their k nearest known items (rows "... + k-NN imputation")."""
    test = datasets.leave_one_out(dataset, "test")
    split = datasets.with_targets_in(test, cold)
    known = datasets.without_targets_in(test, cold)
    if impute:
        runs = {
            **runs,
            **{f"{name} + {impute}-NN imputation": with_imputed(run, cold, impute)
               for name, run in runs.items() if run.content.any()},
        }  # fmt: skip
    scorers = model_scorers(dataset, runs, device)
    raw = model_scorers(dataset, runs, device, calibrate_new=False)
    scorers |= {f"{name}, raw new-item scores": scorer for name, scorer in raw.items()}
    scorers[CONTENT] = baselines.ContentSimilarity(content)
    reports = {
        f"{name} · {label}": evaluation.evaluate(scorer, users, dataset.num_items)
        for label, users in (("cold items", split), ("known items", known))
        for name, scorer in scorers.items()
    }
    note = (
        f"cold items: {len(cold)} items ({len(cold) / dataset.num_items:.0%} of the catalogue)"
        f" never seen in training; the {len(split.targets)} test users whose target is one"
        f" (cold items), the {len(known.targets)} others (known items)"
    )
    return Comparison(reports, [note])
