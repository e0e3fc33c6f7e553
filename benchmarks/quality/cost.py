"""What a trained user encoder costs to serve, against the spine's default encoder.

One Recommend runs the user encoder once on the user's history (parameter
``history_length``, default 50) at batch 1, so that call is timed, in the same process,
for the trained model and for the spine's default shape (dim 64, 2 layers, 2 heads),
interleaved so that machine noise hits both alike.

    python -m benchmarks.quality.cost RUN_FOLDER [...]   # runs saved by --runs
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

from serving.models.user_encoder import UserEncoder, UserEncoderConfig
from serving.training.runs import load_run

HISTORY = 50
ROUNDS = 30
CALLS = 20


@torch.inference_mode()
def _call_ms(model: UserEncoder, history: int) -> float:
    """Mean milliseconds of one batch-1 forward over ``history`` items."""
    items = torch.randint(1, model.config.num_items + 1, (1, history))
    kinds = torch.ones(1, history, dtype=torch.long)
    content = torch.randn(1, history, model.config.content_dim)
    started = time.perf_counter()
    for _ in range(CALLS):
        model(items, kinds, content)
    return (time.perf_counter() - started) * 1000 / CALLS


def serving_cost(model: UserEncoder, history: int = HISTORY) -> dict[str, float]:
    """Median ms per call of ``model`` and of the default shape, and their ratio."""
    reference = UserEncoder(UserEncoderConfig(num_items=model.config.num_items, max_len=history))
    model, reference = model.eval(), reference.eval()
    ours, base = [], []
    for _ in range(ROUNDS):
        ours.append(_call_ms(model, history))
        base.append(_call_ms(reference, history))
    ms, reference_ms = statistics.median(ours), statistics.median(base)
    return {"ms": round(ms, 3), "reference_ms": round(reference_ms, 3),
            "ratio": round(ms / reference_ms, 2)}  # fmt: skip


if __name__ == "__main__":
    torch.set_num_threads(1)
    for folder in sys.argv[1:]:
        cost = serving_cost(load_run(Path(folder)).model)
        print(f"{folder}: {cost['ms']:.2f} ms vs {cost['reference_ms']:.2f} ms = {cost['ratio']}x")
