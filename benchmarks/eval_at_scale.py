"""`recsys train` + `recsys eval` at the size of a realistic public dataset, as a user runs
them: about 50,000 users, 17,000 items and 440,000 interactions (synthetic here: a
long-tailed item popularity and users who stay near a few topics). It used to die in
OpenBLAS inside EASE (a dense 50,000 x 17,000 float64 matrix); it must finish with every
baseline evaluated or skipped with a note, within the memory EASE states.

    python -m benchmarks.eval_at_scale --folder /tmp/eval-at-scale

prints the time and peak memory of each command and the evaluation table's JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from serving.training.baselines import ease_memory_bytes


def write_events(folder: Path, users: int, items: int, interactions: int, seed: int) -> None:
    """An events CSV and an items CSV with about that many rows; each user draws from a
    few topics (contiguous item ranges), item popularity within a topic is Zipf-like."""
    rng = np.random.default_rng(seed)
    per_user = rng.poisson(interactions / users - 3, users) + 3  # at least 3 each
    topics = 200
    topic_size = items // topics
    rows = ["user_id,item_id,timestamp"]
    for user, count in enumerate(per_user):
        liked = rng.choice(topics, size=3, replace=False)
        topic = rng.choice(liked, size=count)
        offset = np.minimum(rng.zipf(1.3, size=count) - 1, topic_size - 1)
        chosen = topic * topic_size + offset
        rows += [f"u{user},i{item},{t}" for t, item in enumerate(chosen)]
    (folder / "events.csv").write_text("\n".join(rows) + "\n")
    titles = ["item_id,title"] + [f"i{i},Item {i} of topic {i // topic_size}" for i in range(items)]
    (folder / "items.csv").write_text("\n".join(titles) + "\n")


# Runs a command and prints its peak RSS (KiB): a fresh parent per command, so the figure
# is that command's own, not the largest of every child this benchmark has run.
PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True);"
    " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"
)


def timed(command: list[str]) -> tuple[float, float]:
    """Run ``command`` (its output shown); (seconds, its peak RSS in GiB)."""
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *command], check=True, stderr=subprocess.PIPE, text=True
    )
    seconds = time.perf_counter() - started
    sys.stderr.write(done.stderr)
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 2**20


def fit_ease(events: Path) -> None:
    """Fit EASE as `recsys eval` does and print its time and this process's peak RSS."""
    from serving.training import baselines, datasets
    from serving.training.events_file import load_events_file

    dataset = load_events_file(events)
    test = datasets.leave_one_out(dataset, "test")
    started = time.perf_counter()
    baselines.EASE(test.inputs, dataset.num_items)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    stated = baselines.ease_memory_bytes(dataset.num_items) / 2**30
    print(f"{dataset.summary()}")
    print(f"EASE fit: {seconds:.0f} s, stated {stated:.2f} GiB, peak RSS {peak:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/eval-at-scale"))
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=17_000)
    parser.add_argument("--interactions", type=int, default=440_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ease-only",
        action="store_true",
        help="Only fit EASE on the test inputs of that data (where `recsys eval` crashed).",
    )
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    write_events(args.folder, args.users, args.items, args.interactions, args.seed)
    if args.ease_only:
        fit_ease(args.folder / "events.csv")
        return
    recsys = [sys.executable, "-m", "serving.cli"]
    run = args.folder / "run"
    # A small ID-only model: the point is the evaluation at this size, not the model.
    train_s, train_gib = timed(
        [*recsys, "train", "--events", str(args.folder / "events.csv"), "--no-content",
         "--epochs", "1", "--dim", "32", "--layers", "1", "--heads", "1", "--max-len", "20",
         "--out", str(run)]
    )  # fmt: skip
    eval_s, eval_gib = timed(
        [*recsys, "eval", "--run", str(run), "--json", str(args.folder / "eval.json")]
    )
    report = json.loads((args.folder / "eval.json").read_text())
    print(json.dumps({"dataset": report.get("dataset"), "notes": report.get("notes")}, indent=2))
    for name, metrics in report["results"].items():
        print(f"{name:40s} HR@10 {metrics['HR@10']:.4f}  NDCG@10 {metrics['NDCG@10']:.4f}")
    print(f"EASE's stated dense memory: {ease_memory_bytes(args.items) / 2**30:.2f} GiB")
    print(f"recsys train --no-content: {train_s:.0f} s, peak RSS {train_gib:.2f} GiB")
    print(f"recsys eval: {eval_s:.0f} s, peak RSS {eval_gib:.2f} GiB")
    print(
        "command: python -m benchmarks.eval_at_scale"
        f" --users {args.users} --items {args.items} --interactions {args.interactions}"
        f" --folder {args.folder}"
    )


if __name__ == "__main__":
    main()
