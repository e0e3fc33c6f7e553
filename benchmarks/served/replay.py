"""The leave-one-out protocol replayed through the public gRPC API, and the figures of the
lists it gets back.

Offline (``serving.training.evaluation``): per test user, the input is every interaction
but the last, the target is the last; every item is ranked, the user's other seen items
removed. Served, the same: the catalogue goes in through UpsertItems, each input through
LogFeedback (in order, with its event types), the ranking parameters are set to pure
relevance through the Admin API, and Recommend's top ``k`` is scored with the same metric
code (``metrics_from_ranks``) as ``recsys eval``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from serving.client import AsyncRecsysClient, Event
from serving.core.domain import EventType, Item
from serving.core.validation import MAX_EVENTS
from serving.training.datasets import Dataset, Split
from serving.training.evaluation import Report, metrics_from_ranks

K = 10
ITEMS_PER_CALL = 250
"""UpsertItems embeds every text in Triton before it answers: small calls keep each one
well inside its deadline on a busy machine."""
CHANGED_BY = "benchmarks.served"


def pure_relevance(history_length: int) -> dict[str, Any]:
    """Ranking parameters under which Recommend is the offline protocol: relevance only
    (no popularity, freshness, exploration, diversity, negative-feedback demotion, no
    category rule), seen items excluded, the model's history length."""
    return {
        "relevance_weight": 1.0,
        "popularity_weight": 0.0,
        "freshness_weight": 0.0,
        "exploration": "off",
        "exploration_weight": 0.0,
        "diversity_lambda": 0.0,
        "max_per_category": 0,
        "negative_feedback_penalty": 0.0,
        "exclude_seen": True,
        "include_categories": [],
        "exclude_categories": [],
        "history_length": history_length,
    }


def user_key(dataset: Dataset, user: int) -> str:
    """The user id the replay logs ``dataset.users[user]``'s feedback under."""
    return f"u{dataset.users[user]}"


def catalogue(dataset: Dataset) -> list[Item]:
    """The dataset's items as UpsertItems takes them: the text training embedded is the
    title, so the served content embedding is of the very same text."""
    return [
        Item(item_id, title=text)
        for item_id, text in zip(dataset.item_ids, dataset.texts, strict=True)
    ]


def feedback(dataset: Dataset, split: Split, until: datetime | None = None) -> list[list[Event]]:
    """Each test user's input as LogFeedback calls' worth of events, in the split's order.
    The timestamps keep that order: one second apart, the newest one second before
    ``until`` (default: now)."""
    total = sum(len(s) for s in split.inputs)
    clock = (until or datetime.now(UTC)) - timedelta(seconds=total + 1)
    batches: list[list[Event]] = [[]]
    for user, tokens, kinds in zip(split.users, split.inputs, split.input_types, strict=True):
        key = user_key(dataset, int(user))
        for token, kind in zip(tokens, kinds, strict=True):
            if len(batches[-1]) == MAX_EVENTS:
                batches.append([])
            clock += timedelta(seconds=1)
            item = dataset.item_ids[int(token) - 1]
            batches[-1].append(Event(item, EventType(int(kind)), user_id=key, timestamp=clock))
    return [batch for batch in batches if batch]


async def upsert_catalogue(client: AsyncRecsysClient, dataset: Dataset) -> int:
    items = catalogue(dataset)
    for start in range(0, len(items), ITEMS_PER_CALL):
        await client.upsert_items(items[start : start + ITEMS_PER_CALL])
    return len(items)


async def log_histories(client: AsyncRecsysClient, dataset: Dataset, split: Split) -> int:
    """Every test user's input, one call after the other (so each user's events arrive in
    order); the number of events accepted."""
    accepted = 0
    for batch in feedback(dataset, split):
        result = await client.log_feedback(batch)
        accepted += result.accepted
    return accepted


async def set_parameters(client: AsyncRecsysClient, history_length: int) -> int:
    """Pure relevance in force; the parameter version."""
    changed = await client.update_parameters(
        pure_relevance(history_length), changed_by=CHANGED_BY, reason="served vs offline replay"
    )
    return int(changed["version"])


async def wait_for(
    client: AsyncRecsysClient,
    user_id: str,
    *,
    model_version: int,
    parameter_version: int,
    timeout_s: float,
) -> None:
    """Until Recommend answers ``user_id`` (one with a history: only then is the model
    asked) with this model and these parameters; the orchestrator follows Triton's new
    version and the parameter notification by itself."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        probe = await client.recommend(user_id, k=1)
        if (
            probe.model_version == str(model_version)
            and probe.parameter_version >= parameter_version
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(
                f"Recommend still answers with model v{probe.model_version or '-'} and"
                f" parameters v{probe.parameter_version} after {timeout_s:.0f}s"
            )
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Served:
    """What Recommend answered for each test user."""

    lists: list[list[str]]
    degraded: int
    """Answers from the fallback (no model): they are not the model's lists."""
    model_versions: frozenset[str]


async def recommend_all(
    client: AsyncRecsysClient,
    dataset: Dataset,
    split: Split,
    k: int = K,
    concurrency: int = 4,
) -> Served:
    """Recommend for every test user of ``split``, ``concurrency`` calls at a time."""
    lists: list[list[str]] = [[] for _ in split.users]
    degraded, versions = 0, set()
    gate = asyncio.Semaphore(concurrency)

    async def one(row: int, user: int) -> None:
        nonlocal degraded
        async with gate:
            answer = await client.recommend(user_key(dataset, user), k=k)
        lists[row] = answer.item_ids
        degraded += answer.degraded
        versions.add(answer.model_version)

    await asyncio.gather(*(one(row, int(u)) for row, u in enumerate(split.users)))
    return Served(lists, degraded, frozenset(versions))


def tokens_of(dataset: Dataset, lists: Sequence[Sequence[str]], k: int = K) -> np.ndarray:
    """(users, k) item tokens of served lists; a list shorter than ``k`` is an error (the
    offline protocol always fills the top ``k``)."""
    token = {item_id: i + 1 for i, item_id in enumerate(dataset.item_ids)}
    short = [i for i, items in enumerate(lists) if len(items) != k]
    if short:
        raise ValueError(f"{len(short)} lists with fewer than {k} items (first: row {short[0]})")
    return np.array([[token[i] for i in items] for items in lists], dtype=np.int64).reshape(-1, k)


def served_ranks(recommended: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based position of each target in its list; ``k`` (a miss) when absent."""
    k = recommended.shape[1]
    hit = recommended == targets[:, None]
    return np.where(hit.any(axis=1), hit.argmax(axis=1), k)


def served_report(dataset: Dataset, split: Split, lists: Sequence[Sequence[str]]) -> Report:
    """HR@k and NDCG@k of the served lists by the evaluation's own metric code."""
    recommended = tokens_of(dataset, lists)
    rank = served_ranks(recommended, split.targets)
    k = recommended.shape[1]
    return Report(len(rank), metrics_from_ranks(rank, recommended, dataset.num_items, (k,)))


def list_agreement(served: np.ndarray, offline: np.ndarray) -> tuple[float, float]:
    """Share of users whose served list is the offline top k, in order; and the mean
    share of the offline top k that the served list holds (in any order)."""
    same = (served == offline).all(axis=1)
    overlap = [
        len(np.intersect1d(a, b)) / offline.shape[1] for a, b in zip(served, offline, strict=True)
    ]
    return float(same.mean()) if len(same) else 1.0, float(np.mean(overlap)) if overlap else 1.0
