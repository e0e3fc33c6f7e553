"""What is served is what was evaluated: `recsys eval`'s figures next to the same run's
served through the public API.

    python -m benchmarks.served --data ../shared/data/ml-latest-small [--threads 1]

On its own state folder and free ports: `recsys train` a user encoder on the dataset (a
short recipe: the point is agreement, not quality), `recsys eval` it; train a second run
with a seeded share of the catalogue held out as new items (``--cold-items``, as in
``benchmarks.quality``); start the platform with `recsys up --no-demo`; through the gRPC
API only, put the catalogue in (UpsertItems), every test user's history but the target
(LogFeedback, in order), set pure relevance (Admin API); `recsys export` each run and ask
Recommend (k=10) for every test user. HR@10 / NDCG@10 of the served lists, by the
evaluation's metric code, must be within ``--tolerance`` NDCG@10 of the offline figures,
on warm targets (every test user) and on cold ones (the users whose target is new).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.served import offline, replay
from benchmarks.served.platform import Platform, elapsed, export, recsys
from serving.adapters.postgres.feedback import MAX_HISTORY
from serving.client import AsyncRecsysClient
from serving.config import Settings
from serving.stack import side_by_side_settings
from serving.training import sources
from serving.training.content import embed_items
from serving.training.datasets import Dataset, Split, cold_items, leave_one_out
from serving.training.evaluation import Report
from serving.training.runs import Run, load_run, save_run

METRICS = ("HR@10", "NDCG@10")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-latest-small"))
    parser.add_argument("--cold-items", type=float, default=0.1, help="0: warm targets only")
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--time-budget", type=float, default=4.0, help="minutes per training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=0.005, help="|served - offline| NDCG@10")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--state-dir", type=Path, default=None, help="default: a new temp dir")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Side:
    """One run's targets: offline and served figures, and the lists behind them."""

    name: str
    run: Path
    split: Split
    offline: dict[str, float]
    offline_source: str
    lists: np.ndarray
    """(users, 10) offline top 10, as tokens."""


def log(message: str) -> None:
    print(message, flush=True)


def train_offline(args: argparse.Namespace, settings: Settings, out: Path) -> Run:
    """`recsys train`, then `recsys eval` (its JSON next to the run)."""
    common = ["--threads", str(args.threads)] if args.threads else []
    recsys(
        settings, out.parent / "offline.log", "train", "--data", str(args.data.resolve()),
        "--out", str(out), "--max-len", str(args.max_len), "--dim", str(args.dim),
        "--epochs", str(args.epochs), "--time-budget", str(args.time_budget),
        "--seed", str(args.seed), *common,
    )  # fmt: skip
    recsys(
        settings, out.parent / "offline.log", "eval", "--run", str(out), "--no-ablation",
        "--json", str(out / "eval.json"), *common,
    )  # fmt: skip
    return load_run(out)


def recsys_eval_figures(run: Path) -> dict[str, float]:
    results = json.loads((run / "eval.json").read_text())["results"]
    ours = next(iter(results.values()))  # the run comes first, then the baselines
    return {m: float(ours[m]) for m in METRICS}


def side(name: str, run: Run, folder: Path, dataset: Dataset, split: Split, source: str) -> Side:
    score = offline.scorer(run, dataset)
    report = offline.report(score, split, dataset.num_items)
    return Side(
        name, folder, split, {m: report[m] for m in METRICS}, source,
        offline.top_lists(score, split, replay.K),
    )  # fmt: skip


async def load_platform(settings: Settings, dataset: Dataset, split: Split) -> None:
    async with AsyncRecsysClient(
        settings.grpc_target, token=settings.admin_token.get_secret_value(), timeout_s=300
    ) as client:
        started = time.perf_counter()
        items = await replay.upsert_catalogue(client, dataset)
        log(f"  UpsertItems: {items} items ({elapsed(started)})")
        started = time.perf_counter()
        events = await replay.log_histories(client, dataset, split)
        log(f"  LogFeedback: {events} events of {len(split.users)} users ({elapsed(started)})")


async def serve(
    settings: Settings, dataset: Dataset, side: Side, version: int, history: int
) -> Any:
    async with AsyncRecsysClient(
        settings.grpc_target, token=settings.admin_token.get_secret_value(), timeout_s=60
    ) as client:
        parameters = await replay.set_parameters(client, history)
        probe = replay.user_key(dataset, int(side.split.users[0]))
        await replay.wait_for(
            client, probe, model_version=version, parameter_version=parameters, timeout_s=180
        )
        return await replay.recommend_all(client, dataset, side.split)


def compare(dataset: Dataset, side: Side, served: replay.Served) -> dict[str, Any]:
    report: Report = replay.served_report(dataset, side.split, served.lists)
    tokens = replay.tokens_of(dataset, served.lists)
    same, overlap = replay.list_agreement(tokens, side.lists)
    differing = np.flatnonzero(~(tokens == side.lists).all(axis=1))
    lengths = [len(side.split.inputs[i]) for i in differing]
    return {
        "users": report.users,
        "offline": side.offline,
        "offline_source": side.offline_source,
        "served": {m: report[m] for m in METRICS},
        "lists_identical": same,
        "top10_overlap": overlap,
        "degraded": served.degraded,
        "model_versions": sorted(served.model_versions),
        "differing_users": [replay.user_key(dataset, int(side.split.users[i])) for i in differing],
        "differing_history_over_max": int(sum(n > MAX_HISTORY for n in lengths)),
    }


def table(rows: dict[str, dict[str, Any]], tolerance: float) -> str:
    lines = [
        "| targets | users | offline HR@10 | served HR@10 | offline NDCG@10 | served NDCG@10"
        " | Δ NDCG@10 | identical lists | top-10 overlap | degraded |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        off, srv = r["offline"], r["served"]
        delta = srv["NDCG@10"] - off["NDCG@10"]
        verdict = "PASS" if abs(delta) <= tolerance and not r["degraded"] else "MISS"
        lines.append(
            f"| {name} | {r['users']} | {off['HR@10']:.4f} | {srv['HR@10']:.4f}"
            f" | {off['NDCG@10']:.4f} | {srv['NDCG@10']:.4f} | {delta:+.4f} ({verdict})"
            f" | {r['lists_identical']:.1%} | {r['top10_overlap']:.1%} | {r['degraded']} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    state = (args.state_dir or Path(tempfile.mkdtemp(prefix="recsys-served-"))).resolve()
    runs = state / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    settings = side_by_side_settings(state, triton_timeout_ms=10_000, index_refresh_s=0.5)
    dataset = sources.load_movielens(args.data)
    test = leave_one_out(dataset, "test")
    log(f"{dataset.name}: {dataset.num_items} items, {len(test.users)} test users; state {state}")

    started = time.perf_counter()
    log("recsys train + recsys eval (warm) ...")
    warm_run = train_offline(args, settings, runs / "warm")
    log(f"  done ({elapsed(started)}); log {runs / 'offline.log'}")
    sides = [
        side("warm", warm_run, runs / "warm", dataset, test, "recsys eval"),
    ]
    cli_figures = recsys_eval_figures(runs / "warm")
    if any(abs(cli_figures[m] - sides[0].offline[m]) > 1e-6 for m in METRICS):
        # Same code and weights: only a different run folder or data could do this.
        log(f"  warning: recsys eval says {cli_figures}, the same code here {sides[0].offline}")
    sides[0] = replace(sides[0], offline=cli_figures)  # the table shows recsys eval's own
    if args.cold_items:
        started = time.perf_counter()
        log(f"training the cold run ({args.cold_items:.0%} of the items held out as new) ...")
        cold = cold_items(dataset, args.cold_items, args.seed)
        content = embed_items(dataset, state / "cache")
        cold_run = offline.train_cold(dataset, content, warm_run, cold)
        save_run(runs / "cold", cold_run)
        split = offline.cold_split(dataset, cold)
        sides.append(
            side("cold", cold_run, runs / "cold", dataset, split, "evaluation.evaluate (cold)")
        )
        log(f"  done ({elapsed(started)})")

    rows: dict[str, dict[str, Any]] = {}
    platform_log = state / "platform.log"
    log(f"recsys up --no-demo (log {platform_log}) ...")
    with Platform(settings, platform_log) as up:
        asyncio.run(load_platform(settings, dataset, test))
        for entry in sides:
            version = export(settings, state / "export.log", entry.run, up.database_url)
            started = time.perf_counter()
            served = asyncio.run(serve(settings, dataset, entry, version, args.max_len))
            took = elapsed(started)
            log(f"  {entry.name}: model v{version}, {len(served.lists)} Recommend ({took})")
            rows[entry.name] = compare(dataset, entry, served)
    command = "python -m benchmarks.served " + " ".join(sys.argv[1:])
    return {
        "dataset": dataset.summary(),
        "rows": rows,
        "tolerance": args.tolerance,
        "recipe": warm_run.model.config.to_dict() | {"options": warm_run.record["options"]},
        "machine": f"{platform.machine()} {platform.processor()}, torch {torch.__version__}",
        "command": command,
    }


def main(argv: list[str]) -> int:
    args = parse(argv)
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print()
    print(table(result["rows"], args.tolerance))
    for name, row in result["rows"].items():
        differing = row["differing_users"]
        if differing:
            print(
                f"{name}: {len(differing)} lists differ from the offline top 10"
                f" ({row['differing_history_over_max']} of their users have more than"
                f" {MAX_HISTORY} interactions); first: {', '.join(differing[:5])}"
            )
    print("offline figures: warm from `recsys eval` (JSON); cold from the same evaluation code")
    print(f"machine: {result['machine']}")
    print("reproduce: " + result["command"])
    ok = all(
        abs(r["served"]["NDCG@10"] - r["offline"]["NDCG@10"]) <= args.tolerance
        and not r["degraded"]
        for r in result["rows"].values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
