"""Quality benchmark: the results table of benchmarks/RESULTS.md in one command.

    python -m benchmarks.quality --data ../shared/data/ml-1m [--time-budget 55] [--threads 2]

Loads the dataset (any format ``recsys train --data`` reads), embeds item text with
MiniLM in-process, trains our user encoder (learned ID + projected content embeddings)
and its ID-only ablation with the same recipe, fits popularity, EASE and content
similarity, and reports HR@10/20, NDCG@10/20 and catalogue coverage on the test items
(last item per user, all items ranked, seen items removed), with training time, peak
memory and what each trained encoder costs to serve (``cost.py``).

``--models`` picks a subset; ``--json`` saves a part and ``--merge`` joins parts into
one table, so the two trainings can run as two processes side by side (same figures,
half the wall time on a 2-core machine).

``--cold-items 0.1`` asks what content is for instead: a seeded tenth of the catalogue
plays items new since training (every interaction with them removed from training, no
learned embedding when scored, as the orchestrator serves them), and the table is the
test users whose target is one of them, against content similarity.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.quality.cost import HISTORY, serving_cost
from serving.models.user_encoder import UserEncoderConfig
from serving.training import pipeline, sources
from serving.training.content import embed_items
from serving.training.datasets import cold_items
from serving.training.runs import save_run
from serving.training.trainer import TrainingOptions

MODELS = ("ours", "id-only", "baselines")
# The defaults are the recipe of the best recorded run, sized for one hour of one core of
# this 2-core machine (see benchmarks/RESULTS.md); on a GPU add --device cuda (--precision
# bf16 there) and more --epochs.
NAMES = {"ours": "ours (MiniLM content + ID)", "id-only": "ours, ID-only (ablation)"}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-1m"))
    parser.add_argument("--models", default=",".join(MODELS), help="subset of " + ",".join(MODELS))
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--attention-dropout", type=float, default=0.0)
    parser.add_argument("--id-dropout", type=float, default=0.0)
    parser.add_argument(
        "--correction-norm", type=float, default=None,
        help="bound on the learned embedding's norm (a correction to projected content)",
    )  # fmt: skip
    parser.add_argument(
        "--impute", type=int, default=None, metavar="K",
        help="with --cold-items: also score new items with k-NN imputed embeddings",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--schedule", default="cosine")
    parser.add_argument("--loss", default="full", help="full or sampled")
    parser.add_argument("--negatives", type=int, default=1024, help="for --loss sampled")
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--time-budget", type=float, default=57.0, help="minutes per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ease-l2", type=float, default=500.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", help="fp32 or bf16 (autocast)")
    parser.add_argument(
        "--cold-items", type=float, default=None, metavar="FRACTION",
        help="evaluate on items held out of training (new items) instead",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=Path(".state/cache"))
    parser.add_argument("--runs", type=Path, default=None, help="save trained runs here")
    parser.add_argument("--json", type=Path, default=None, help="write this part's results")
    parser.add_argument("--merge", type=Path, nargs="*", default=None, help="join saved parts")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train and evaluate the chosen models; the result as a JSON-ready dict."""
    if args.threads:
        torch.set_num_threads(args.threads)
    wanted = [m for m in args.models.split(",") if m]
    unknown = set(wanted) - set(MODELS)
    if unknown:
        raise SystemExit(f"unknown --models {sorted(unknown)}; choose from {MODELS}")
    dataset = sources.load_movielens(args.data)
    started = time.perf_counter()
    content = embed_items(dataset, args.cache)
    cold = None if args.cold_items is None else cold_items(dataset, args.cold_items, args.seed)
    config = UserEncoderConfig(
        num_items=dataset.num_items, dim=args.dim, max_len=args.max_len, layers=args.layers,
        heads=args.heads, dropout=args.dropout, attention_dropout=args.attention_dropout,
        id_dropout=args.id_dropout, correction_norm=args.correction_norm,
    )  # fmt: skip
    options = TrainingOptions(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
        loss=args.loss, negatives=args.negatives, patience=args.patience,
        time_budget_s=args.time_budget * 60, seed=args.seed, device=args.device,
        precision=args.precision,
    )  # fmt: skip
    runs = {}
    for model in ("ours", "id-only"):
        if model in wanted:
            print(f"training {NAMES[model]} ...", flush=True)
            hooks = pipeline.Hooks(
                epoch=lambda e, loss: print(f"  epoch {e}: loss {loss:.4f}", flush=True),
                validation=lambda e, s: print(f"  epoch {e}: valid NDCG@10 {s:.4f}", flush=True),
            )
            trained = pipeline.train_run(
                dataset, content, config, options, use_content=model == "ours", hooks=hooks,
                cold=cold,
            )  # fmt: skip
            runs[NAMES[model]] = trained
            if args.runs:
                save_run(args.runs / model, trained)
    if cold is None:
        comparison = pipeline.compare(
            dataset, runs, with_baselines="baselines" in wanted, ease_l2=args.ease_l2,
            device=args.device, content=content,
        )  # fmt: skip
    else:
        comparison = pipeline.compare_cold(
            dataset, cold, runs, content, device=args.device, impute=args.impute
        )
    inference = {name: serving_cost(run.model) for name, run in runs.items()}
    training = {
        name: {k: r.record[k] for k in ("best_epoch", "epochs_run", "stopped", "train_seconds",
                                        "validation")}
        for name, r in runs.items()
    }  # fmt: skip
    return {
        "dataset": dataset.summary(),
        "results": {name: report.metrics for name, report in comparison.reports.items()},
        "users": {name: report.users for name, report in comparison.reports.items()},
        "training": training,
        "inference": inference,
        "notes": comparison.notes,
        "config": config.to_dict(),
        "options": options.to_dict(),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "peak_memory_mb": round(pipeline.peak_memory_mb()),
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor()}, torch {torch.__version__}",
        "command": "python -m benchmarks.quality " + " ".join(sys.argv[1:]),
    }


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged = dict(parts[0])
    for key in ("results", "users", "training", "inference"):
        merged[key] = {k: v for part in parts for k, v in part.get(key, {}).items()}
    merged["notes"] = [n for part in parts for n in part["notes"]]
    merged["command"] = " ; ".join(part["command"] for part in parts)
    merged["wall_seconds"] = max(part["wall_seconds"] for part in parts)
    merged["peak_memory_mb"] = max(part["peak_memory_mb"] for part in parts)
    return merged


def markdown(result: dict[str, Any]) -> str:
    """The results table (markdown) with training time and peak memory per model."""
    metrics = list(next(iter(result["results"].values())))
    lines = [
        "| model | " + " | ".join(metrics) + " | epochs (best) | training min |",
        "|---|" + "---:|" * (len(metrics) + 2),
    ]
    for name, values in result["results"].items():
        train = result["training"].get(name)
        epochs = f"{train['epochs_run']} ({train['best_epoch']})" if train else "-"
        minutes = f"{train['train_seconds'] / 60:.1f}" if train else "-"
        cells = " | ".join(f"{values[m]:.4f}" for m in metrics)
        lines.append(f"| {name} | {cells} | {epochs} | {minutes} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    args = parse(argv)
    parts = [json.loads(p.read_text()) for p in args.merge or []]
    result = merge(parts) if parts else run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print()
    print(markdown(result))
    for note in result["notes"]:
        print(note)
    for name, cost in result.get("inference", {}).items():
        print(
            f"serving cost of {name}: {cost['ms']:.2f} ms per user encoding ({HISTORY} items,"
            f" batch 1) = {cost['ratio']:.2f}x the spine's default encoder"
            f" ({cost['reference_ms']:.2f} ms, same process)"
        )
    print(
        f"\nwall {result['wall_seconds'] / 60:.1f} min, peak memory {result['peak_memory_mb']} MiB,"
        f" {result['machine']}"
    )
    print("reproduce: " + result["command"])


if __name__ == "__main__":
    main(sys.argv[1:])
