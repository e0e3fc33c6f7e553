"""Interactive benchmark: does feedback steer the next recommendation?

    python -m benchmarks.interactive --data ../shared/data/ml-1m [--users 300] [--epochs 8]

Replays held-out MovieLens-1M users through the real gRPC API. The catalogue (titles and
genres from movies.dat) goes in through UpsertItems, so MiniLM embeds it in Triton; the
user encoder is trained on the other users' sequences by the product's training code and
exported as a Triton model version. Each held-out user starts from their history before
their last 20 interactions; at each of 20 steps we ask for 10 items and then send the
user's true next interaction as a CLICK. The baseline is the same model with the list
frozen at the start of the session (no feedback). Reported: hit rate@10 per step and the
mean; the target is a mean with feedback at least 2x the frozen one.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from serving.adapters.postgres import items as item_store
from serving.adapters.postgres.db import open_pool
from serving.adapters.triton.client import TritonEncoders
from serving.client import AsyncRecsysClient, Event
from serving.config import Settings
from serving.core.domain import USER_ENCODER, EventType, Item
from serving.models.user_encoder import UserEncoderConfig
from serving.stack import Stack, side_by_side_settings
from serving.training.export import export_user_encoder
from serving.training.trainer import train_user_encoder

STEPS = 20
K = 10


def read_ml1m(folder: Path) -> tuple[dict[int, list[int]], dict[int, Item]]:
    """SASRec's ml-1m.txt (user item, time-ordered) and the movies behind its item ids."""
    sequences: dict[int, list[int]] = {}
    with (folder / "ml-1m.txt").open() as lines:
        for line in lines:
            user, item = line.split()
            sequences.setdefault(int(user), []).append(int(item))
    original: dict[int, int] = {}
    with (folder / "sas_to_original_items.txt").open() as lines:
        for line in lines:
            sas, movie = line.split()
            original[int(movie)] = int(sas)
    items: dict[int, Item] = {}
    with (folder / "movies.dat").open(encoding="latin-1") as lines:
        for line in lines:
            movie, title, genres = line.rstrip("\n").split("::")
            if int(movie) in original:
                item_id = original[int(movie)]
                items[item_id] = Item(f"ml-{item_id}", title, categories=tuple(genres.split("|")))
    return sequences, items


async def prepare(
    settings: Settings, items: dict[int, Item], train: list[list[int]], epochs: int
) -> None:
    """Catalogue through the API, then the user encoder trained and loaded in Triton."""
    async with AsyncRecsysClient(settings.grpc_target, timeout_s=600) as client:
        catalogue = list(items.values())
        for start in range(0, len(catalogue), 500):
            await client.upsert_items(catalogue[start : start + 500])
    assert settings.database_url is not None
    pool = await open_pool(settings.database_url.get_secret_value(), 2)
    try:
        stored = {s.item.item_id: s for s in await item_store.items_changed_since(pool, None)}
        ids = [item.item_id for item in catalogue]
        content = np.stack([stored[i].embedding for i in ids])
        histories = [[(f"ml-{i}", EventType.CLICK) for i in seq] for seq in train]
        started = time.perf_counter()
        result = train_user_encoder(
            histories,
            ids,
            content,
            UserEncoderConfig(num_items=len(ids), max_len=50),
            epochs=epochs,
            seed=0,
            progress=lambda epoch, loss: print(f"  epoch {epoch}: loss {loss:.3f}", flush=True),
        )
        print(f"trained in {time.perf_counter() - started:.0f}s")
        await export_user_encoder(
            pool,
            settings.model_repository,
            result.model,
            result.vocabulary,
            content,
            {"source": "ml-1m"},
        )
    finally:
        await pool.close()
    encoders = TritonEncoders(settings.triton_grpc_url, timeout_ms=120_000)
    await encoders.load(USER_ENCODER)
    await encoders.close()


async def replay(settings: Settings, users: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Hits per step (users x steps) with feedback and with the list frozen."""
    live = np.zeros((len(users), STEPS))
    frozen = np.zeros((len(users), STEPS))
    async with AsyncRecsysClient(settings.grpc_target, timeout_s=30) as client:
        # Wait for the orchestrator to follow the new model version.
        for _ in range(200):
            probe = await client.recommend("probe", k=1)
            if probe.model_version:
                break
            await asyncio.sleep(0.1)
        for row, sequence in enumerate(users):
            user = f"replay-{row}"
            prefix, future = sequence[:-STEPS], sequence[-STEPS:]
            await client.log_feedback([Event(f"ml-{i}", "click", user_id=user) for i in prefix])
            first = set((await client.recommend(user, k=K)).item_ids)
            for step, item in enumerate(future):
                shown = first if step == 0 else set((await client.recommend(user, k=K)).item_ids)
                live[row, step] = f"ml-{item}" in shown
                frozen[row, step] = f"ml-{item}" in first
                await client.log_feedback([Event(f"ml-{item}", "click", user_id=user)])
    return live, frozen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-1m"))
    parser.add_argument("--users", type=int, default=300, help="held-out users to replay")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    sequences, items = read_ml1m(args.data)
    eligible = [u for u, s in sequences.items() if len(s) > STEPS + 5]
    held_out = set(random.Random(0).sample(eligible, args.users))
    train = [s for u, s in sequences.items() if u not in held_out]
    replayed = [sequences[u] for u in sorted(held_out)]
    settings = side_by_side_settings(
        state_dir=Path(tempfile.mkdtemp(prefix="recsys-interactive-")),
        triton_timeout_ms=2000,
    )
    stack = Stack(settings, simulate=False, dashboard=False, demo=False)
    try:
        stack.start()
        asyncio.run(prepare(stack.settings, items, train, args.epochs))
        live, frozen = asyncio.run(replay(stack.settings, replayed))
    finally:
        stack.stop()
    print("\n| step | hit rate@10 with feedback | frozen at start |")
    print("|---:|---:|---:|")
    for step in range(STEPS):
        print(f"| {step + 1} | {live[:, step].mean():.3f} | {frozen[:, step].mean():.3f} |")
    ratio = live.mean() / max(frozen.mean(), 1e-9)
    print(
        f"\nmean hit rate@10: with feedback {live.mean():.3f}, frozen {frozen.mean():.3f}"
        f" -> {ratio:.2f}x (target >= 2x: {'PASS' if ratio >= 2 else 'MISS'})"
    )
    print(f"users replayed: {len(replayed)}, trained on {len(train)} users")
    print("reproduce: python -m benchmarks.interactive " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
