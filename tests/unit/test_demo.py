"""The demo catalogue, synthetic tastes and histories, and the traffic simulator."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from serving.client.types import Event, FeedbackResult
from serving.core.domain import POSITIVE_EVENTS, EventType, Item, Recommendation, ScoredItem
from serving.demo import catalogue as cat
from serving.demo.simulator import MAX_IN_FLIGHT, SimulationStats, position_bias, simulate
from serving.demo.tastes import click_probability, make_tastes, synthetic_histories

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def items() -> list[Item]:
    return cat.generate_catalogue(1200, seed=7, now=NOW)


# --- catalogue ---------------------------------------------------------------------------


def test_catalogue_is_deterministic_for_a_seed(items: list[Item]) -> None:
    assert cat.generate_catalogue(1200, seed=7, now=NOW) == items
    assert cat.generate_catalogue(1200, seed=8, now=NOW) != items


def test_catalogue_ids_and_titles_are_unique(items: list[Item]) -> None:
    assert items[42].item_id == "item-00042"
    assert len({i.item_id for i in items}) == len(items)
    assert len({i.title for i in items}) == len(items)


def test_titles_stay_unique_past_the_word_combinations() -> None:
    many = cat.generate_catalogue(6000, seed=3, now=NOW)
    assert len({i.title for i in many}) == 6000


def test_catalogue_covers_every_category_with_readable_text(items: list[Item]) -> None:
    primary = Counter(i.categories[0] for i in items)
    assert set(primary) == set(cat.CATEGORIES)
    assert len(cat.CATEGORIES) >= 10
    assert min(primary.values()) >= len(items) // len(cat.CATEGORIES) - 1
    for item in items:
        assert item.title.strip() and item.description.strip()
        assert item.description[0].isupper() and item.description.endswith(".")
        assert 1 <= len(item.categories) <= 2
        assert set(item.categories) <= set(cat.CATEGORIES)
        assert 2 <= len(item.tags) <= 4 and len(set(item.tags)) == len(item.tags)
        assert float(item.attributes["price"]) > 0
        assert item.text().startswith(item.title)
        assert "{" not in item.text()
    assert any(len(i.categories) == 2 for i in items)


def test_published_at_spreads_over_a_year_with_some_fresh_items(items: list[Item]) -> None:
    ages = [NOW - i.published_at for i in items if i.published_at is not None]
    assert len(ages) == len(items)
    assert all(timedelta(0) <= age <= timedelta(days=365) for age in ages)
    fresh = sum(age <= timedelta(days=2) for age in ages)
    assert 0.03 * len(items) <= fresh <= 0.15 * len(items)
    assert max(ages) > timedelta(days=300)


def test_category_vocabulary_differs_between_categories(items: list[Item]) -> None:
    # The content encoder only separates categories if their words differ.
    def words(category: str) -> set[str]:
        return {
            w.lower().strip(".,:")
            for i in items
            if i.categories[0] == category
            for w in f"{i.title} {i.description}".split()
        }

    jazz, hiking = words("jazz-albums"), words("hiking-gear")
    assert len(jazz & hiking) < 0.2 * min(len(jazz), len(hiking))


# --- tastes --------------------------------------------------------------------------------


def test_tastes_like_one_to_three_categories() -> None:
    tastes = make_tastes(300, list(cat.CATEGORIES), seed=1)
    assert tastes == make_tastes(300, list(cat.CATEGORIES), seed=1)
    assert len({t.user_id for t in tastes}) == 300
    counts = Counter(len(t.liked) for t in tastes)
    assert set(counts) == {1, 2, 3}
    for taste in tastes:
        assert sum(taste.weights.values()) == pytest.approx(1.0)
        assert set(taste.weights) == set(cat.CATEGORIES)
        assert all(w > 0 for w in taste.weights.values())
        assert min(taste.weights[c] for c in taste.liked) > max(
            w for c, w in taste.weights.items() if c not in taste.liked
        )


def test_click_probability_is_high_for_liked_categories(items: list[Item]) -> None:
    taste = make_tastes(1, list(cat.CATEGORIES), seed=4)[0]
    liked = [click_probability(taste, i) for i in items if taste.likes(i)]
    others = [click_probability(taste, i) for i in items if not taste.likes(i)]
    assert all(0.0 <= p <= 1.0 for p in liked + others)
    assert min(liked) > 0.15
    assert max(others) < 0.1
    assert max(liked) == pytest.approx(0.6)


def test_synthetic_histories_follow_tastes_and_are_sequential(items: list[Item]) -> None:
    by_id = {i.item_id: i for i in items}
    tastes = make_tastes(120, list(cat.CATEGORIES), seed=2)
    histories = synthetic_histories(items, tastes, length=40, seed=5)
    assert histories == synthetic_histories(items, tastes, length=40, seed=5)
    assert len(histories) == len(tastes)
    kinds: Counter[EventType] = Counter()
    positive = in_taste = same_category = transitions = negative_outside = negatives = 0
    for taste, history in zip(tastes, histories, strict=True):
        assert len(history) == 40
        previous = None
        for item_id, kind in history:
            item = by_id[item_id]
            kinds[kind] += 1
            if kind in POSITIVE_EVENTS:
                positive += 1
                in_taste += taste.likes(item)
                if previous is not None:
                    transitions += 1
                    same_category += item.categories[0] == previous
                previous = item.categories[0]
            else:
                negatives += 1
                negative_outside += not taste.likes(item)
    assert in_taste / positive > 0.7
    # The next category is predictable from the last one far above chance (1/12).
    assert same_category / transitions > 0.6
    assert negative_outside == negatives
    assert kinds[EventType.CLICK] > sum(kinds[k] for k in POSITIVE_EVENTS - {EventType.CLICK})
    for kind in (EventType.LIKE, EventType.ADD_TO_CART, EventType.PURCHASE, EventType.SKIP):
        assert kinds[kind] > 0
    assert 0 < negatives < 0.2 * sum(kinds.values())


def test_histories_contain_next_in_series_steps(items: list[Item]) -> None:
    order = {i.item_id: n for n, i in enumerate(items)}
    step = len(cat.CATEGORIES)  # round-robin categories: the next in series is 12 ids on
    tastes = make_tastes(50, list(cat.CATEGORIES), seed=2)
    series = sum(
        order[b] - order[a] == step
        for history in synthetic_histories(items, tastes, length=30, seed=5)
        for (a, _), (b, _) in itertools.pairwise(history)
    )
    assert series > 0.1 * 50 * 29


# --- simulator -----------------------------------------------------------------------------


class FakeClient:
    """Same call signatures as AsyncRecsysClient; records what the simulator sends."""

    def __init__(self, items: list[Item], latency_s: float = 0.0, fail_every: int = 0) -> None:
        self.ids = [i.item_id for i in items]
        self.latency_s = latency_s
        self.fail_every = fail_every
        self.recommends: list[Recommendation] = []
        self.batches: list[list[Event]] = []
        self.calls = 0
        self.in_flight = self.max_in_flight = 0

    async def recommend(self, user_id: str, k: int = 10, **_: object) -> Recommendation:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency_s)
            if self.fail_every and self.calls % self.fail_every == 0:
                raise grpc.aio.AioRpcError(
                    grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
                )
            start = (self.calls * 7) % (len(self.ids) - k)
            rec = Recommendation(
                recommendation_id=str(uuid.uuid4()),
                items=tuple(ScoredItem(i, 1.0, {}, ()) for i in self.ids[start : start + k]),
                model_version="1",
                degraded=False,
                variant="A",
                parameter_version=1,
            )
            self.recommends.append(rec)
            return rec
        finally:
            self.in_flight -= 1

    async def log_feedback(self, events: Sequence[Event]) -> FeedbackResult:
        self.batches.append(list(events))
        return FeedbackResult(len(events), 0)


async def test_simulator_sends_tagged_feedback_at_the_rate(items: list[Item]) -> None:
    client = FakeClient(items)
    stats = await simulate(client, items, rate=100.0, users=20, duration_s=0.5)
    assert isinstance(stats, SimulationStats)
    # Open loop at 100/s for 0.5 s: about 50 calls (timer slack on a busy machine).
    assert 20 <= stats.recommends <= 55
    assert stats.recommends == len(client.recommends) and not stats.errors
    shown = {r.recommendation_id: set(r.item_ids) for r in client.recommends}
    users = set()
    for batch in client.batches:
        assert batch
        rec_ids = {e.recommendation_id for e in batch}
        assert len(rec_ids) == 1  # one LogFeedback call per recommendation
        (rec_id,) = rec_ids
        assert {e.item_id for e in batch} <= shown[rec_id]
        users |= {e.user_id for e in batch}
        assert len({e.event_id for e in batch}) == len(batch)
    assert stats.events == sum(len(b) for b in client.batches) > 0
    assert stats.clicks == sum(e.type == EventType.CLICK for b in client.batches for e in b)
    assert stats.clicks > 0
    assert users and all(u.startswith("user-") for u in users)


async def test_simulator_bounds_concurrency_and_stops_on_event(items: list[Item]) -> None:
    client = FakeClient(items, latency_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(simulate(client, items, rate=200.0, stop=stop))
    await asyncio.sleep(0.4)
    stop.set()
    stats = await asyncio.wait_for(task, timeout=2.0)
    assert client.max_in_flight <= MAX_IN_FLIGHT
    assert stats.dropped > 0  # the offered load was higher than 8 in flight allows
    assert stats.recommends == client.calls
    assert client.in_flight == 0  # in-flight visits finished before returning


async def test_simulator_counts_server_errors_and_keeps_going(items: list[Item]) -> None:
    client = FakeClient(items, fail_every=3)
    stats = await simulate(client, items, rate=100.0, duration_s=0.5)
    assert stats.errors.get("UNAVAILABLE", 0) > 0
    assert stats.recommends > 0
    assert stats.recommends + stats.errors["UNAVAILABLE"] == client.calls


def test_position_bias_decreases() -> None:
    biases = [position_bias(p) for p in range(10)]
    assert biases[0] == 1.0
    assert all(a > b for a, b in itertools.pairwise(biases))
