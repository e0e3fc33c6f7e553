"""What is served is what was evaluated, on a tiny planted dataset: the leave-one-out
protocol replayed through `recsys up --no-demo` and the public API (benchmarks.served)
gives each test user the very top 10 that the offline evaluation ranks, for warm targets
and for items newer than the model.

The data is shaped to reach what could differ: histories shorter than the model's length
(padding), longer (truncation), longer than the state the server keeps (seen items still
excluded), event types other than clicks, and items the model never saw.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from benchmarks.served import offline, replay
from benchmarks.served.platform import Platform, export
from serving.adapters.postgres.feedback import MAX_HISTORY
from serving.client import AsyncRecsysClient, Event
from serving.config import Settings
from serving.core.domain import EventType
from serving.models.user_encoder import UserEncoderConfig
from serving.training import pipeline
from serving.training.content import embed_items
from serving.training.datasets import Dataset, Split, build_dataset, cold_items, leave_one_out
from serving.training.runs import Run, save_run
from serving.training.trainer import TrainingOptions
from tests.integration import platform as planted_platform

pytestmark = pytest.mark.integration

TOPICS = ("mountain hiking", "jazz piano", "italian cooking", "space telescopes", "chess openings",
          "tropical aquariums", "vintage motorcycles", "baroque violin", "urban gardening",
          "deep sea diving")  # fmt: skip
PER_TOPIC = 25
MAX_LEN = 12
OTHER_TYPES = (EventType.LIKE, EventType.PURCHASE, EventType.SKIP)


def planted(seed: int = 0) -> Dataset:
    """Users who walk through one or two topics in order (the next item of a topic follows
    the last), now and then with another event type; a few walk the whole catalogue."""
    rng = random.Random(seed)
    catalogue = {
        f"{t:02d}-{i:02d}": f"{topic.title()} number {i}: a {topic} item, part {i} of a series"
        for t, topic in enumerate(TOPICS)
        for i in range(PER_TOPIC)
    }
    order = list(catalogue)
    interactions: dict[str, list[tuple[float, str, int]]] = {}
    for user in range(70):
        topics = rng.sample(range(len(TOPICS)), 2)
        length = rng.choice([4, 6, 9, 15, 22, 30])
        start = rng.randrange(PER_TOPIC)
        walk = [f"{topics[s % 2]:02d}-{(start + s // 2) % PER_TOPIC:02d}" for s in range(length)]
        interactions[f"p{user}"] = [
            (float(s), item, int(rng.choice(OTHER_TYPES) if rng.random() < 0.15 else 1))
            for s, item in enumerate(dict.fromkeys(walk))
        ]
    for user in range(3):  # longer than the state a server keeps per user
        walk = order[user * 7 :] + order[: user * 7]
        interactions[f"long{user}"] = [(float(s), i, 1) for s, i in enumerate(walk[:230])]
    return build_dataset("planted", interactions, catalogue)


@dataclass
class Served:
    dataset: Dataset
    split: Split
    served: replay.Served
    run: Run
    version: int
    settings: Settings


@pytest.fixture(scope="module")
def agreement(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """Both runs trained offline, the platform loaded through the API, each run exported
    and asked for every one of its test users."""
    state = tmp_path_factory.mktemp("served")
    settings = planted_platform.test_settings(state, triton_timeout_ms=10_000)
    dataset = planted()
    content = embed_items(dataset, state / "cache")
    config = UserEncoderConfig(num_items=dataset.num_items, dim=32, max_len=MAX_LEN, heads=1)
    options = TrainingOptions(epochs=6, batch_size=16, lr=5e-3, patience=100)
    warm = pipeline.train_run(dataset, content, config, options)
    cold_tokens = cold_items(dataset, 0.15, seed=1)
    cold = pipeline.train_run(dataset, content, config, options, cold=cold_tokens)
    test = leave_one_out(dataset, "test")
    cases = {"warm": (warm, test), "cold": (cold, offline.cold_split(dataset, cold_tokens))}
    assert len(cases["cold"][1].users) >= 3, "the planted split needs users with a new target"
    out: dict[str, Served] = {}
    with Platform(settings, state / "platform.log") as up:
        asyncio.run(_load(settings, dataset, test))
        for name, (run, split) in cases.items():
            save_run(state / name, run)
            version = export(settings, state / "export.log", state / name, up.database_url)
            served = asyncio.run(_recommend(settings, dataset, split, version))
            out[name] = Served(dataset, split, served, run, version, settings)
        yield out


async def _load(settings: Settings, dataset: Dataset, split: Split) -> None:
    async with _client(settings) as client:
        await replay.upsert_catalogue(client, dataset)
        assert await replay.log_histories(client, dataset, split) == sum(map(len, split.inputs))


async def _recommend(
    settings: Settings, dataset: Dataset, split: Split, version: int
) -> replay.Served:
    async with _client(settings) as client:
        parameters = await replay.set_parameters(client, MAX_LEN)
        probe = replay.user_key(dataset, int(split.users[0]))
        await replay.wait_for(client, probe, model_version=version, parameter_version=parameters,
                              timeout_s=120)  # fmt: skip
        return await replay.recommend_all(client, dataset, split)


def _client(settings: Settings) -> AsyncRecsysClient:
    return AsyncRecsysClient(
        settings.grpc_target, token=settings.admin_token.get_secret_value(), timeout_s=120
    )


def test_the_planted_data_reaches_what_could_differ() -> None:
    dataset = planted()
    lengths = [len(s) - 1 for s in dataset.sequences]
    assert min(lengths) < MAX_LEN < max(lengths)
    assert max(lengths) > MAX_HISTORY
    assert dataset.event_types is not None


@pytest.mark.parametrize("name", ["warm", "cold"])
def test_served_lists_are_the_offline_top_10(agreement: dict[str, Served], name: str) -> None:
    case = agreement[name]
    assert case.served.degraded == 0
    assert case.served.model_versions == {str(case.version)}
    score = offline.scorer(case.run, case.dataset)
    expected = offline.top_lists(score, case.split, replay.K)
    served = replay.tokens_of(case.dataset, case.served.lists)
    differing = [
        replay.user_key(case.dataset, int(case.split.users[row]))
        for row in np.flatnonzero(~(served == expected).all(axis=1))
    ]
    assert not differing, f"served lists differ from the offline top 10 for {differing}"
    figures = offline.report(score, case.split, case.dataset.num_items)
    report = replay.served_report(case.dataset, case.split, case.served.lists)
    assert abs(report["NDCG@10"] - figures["NDCG@10"]) <= 0.005
    assert report["HR@10"] == pytest.approx(figures["HR@10"])


def test_an_anonymous_session_keeps_its_earliest_items_seen(
    agreement: dict[str, Served],
) -> None:
    """Past the kept history, a session's oldest items are read from its events too: with
    everything else excluded by the request, nothing is left to recommend."""
    case = agreement["cold"]
    items = list(case.dataset.item_ids)
    history = items[: MAX_HISTORY + 5]
    unseen = items[MAX_HISTORY + 5 :]

    async def main() -> list[str]:
        async with _client(case.settings) as client:
            events = [Event(i, "click", session_id="served-s1") for i in history]
            await client.log_feedback(events)
            answer = await client.recommend("", session_id="served-s1", k=10, exclude=unseen)
            return answer.item_ids

    assert not set(asyncio.run(main())) & set(history[:5])
