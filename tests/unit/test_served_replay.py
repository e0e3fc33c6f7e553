"""benchmarks.served's replay on its own: what it sends and how it scores what comes back."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from benchmarks.served import replay
from serving.core.domain import EventType
from serving.core.parameters import Exploration, parse_parameters
from serving.training.datasets import Dataset, build_dataset, leave_one_out


def dataset() -> Dataset:
    catalogue = {f"i{n}": f"Item {n}. Categories: c{n % 3}" for n in range(20)}
    interactions = {
        "a": [(float(t), f"i{t}", 1) for t in range(6)],
        "b": [(float(t), f"i{19 - t}", 2 if t == 1 else 1) for t in range(4)],
        "c": [(0.0, "i3", 1), (1.0, "i4", 1)],  # too short to be a test user
    }
    return build_dataset("tiny", interactions, catalogue)


def test_pure_relevance_is_valid_and_leaves_nothing_but_relevance() -> None:
    params = parse_parameters(replay.pure_relevance(37))
    assert params.history_length == 37 and params.exclude_seen
    assert params.exploration == Exploration.OFF
    assert params.relevance_weight > 0
    zero = ("popularity_weight", "freshness_weight", "diversity_lambda",
            "negative_feedback_penalty", "max_per_category")  # fmt: skip
    assert all(getattr(params, name) == 0 for name in zero)


def test_the_catalogue_carries_the_text_training_embedded() -> None:
    data = dataset()
    items = replay.catalogue(data)
    assert [i.item_id for i in items] == list(data.item_ids)
    assert [i.text() for i in items] == list(data.texts)


def test_feedback_is_every_input_in_order_with_its_type_in_small_enough_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replay, "MAX_EVENTS", 4)
    data = dataset()
    split = leave_one_out(data, "test")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    batches = replay.feedback(data, split, until=now)
    assert [len(b) for b in batches] == [4, 4]
    events = [e for batch in batches for e in batch]
    assert [(e.user_id, e.item_id) for e in events] == [
        *[("ua", f"i{t}") for t in range(5)],
        *[("ub", f"i{19 - t}") for t in range(3)],
    ]
    assert [e.type for e in events if e.user_id == "ub"] == [
        EventType.CLICK, EventType.LIKE, EventType.CLICK,
    ]  # fmt: skip
    stamps = [e.timestamp for e in events]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps) and stamps[-1] < now


def test_served_figures_use_the_evaluation_metrics() -> None:
    data = dataset()
    split = leave_one_out(data, "test")  # targets: i5 (user a), i16 (user b)
    lists = [[f"i{n}" for n in range(6, 16)] for _ in split.users]
    lists[1][3] = "i16"
    report = replay.served_report(data, split, lists)
    assert report.users == 2
    assert report["HR@10"] == pytest.approx(0.5)
    assert report["NDCG@10"] == pytest.approx(0.5 / np.log2(5))


def test_a_short_served_list_is_an_error_not_a_miss() -> None:
    data = dataset()
    with pytest.raises(ValueError, match="fewer than 10"):
        replay.tokens_of(data, [["i1", "i2"]])


def test_list_agreement() -> None:
    offline = np.array([[1, 2, 3], [4, 5, 6]])
    served = np.array([[1, 2, 3], [6, 5, 7]])
    assert replay.list_agreement(served, offline) == (0.5, pytest.approx(5 / 6))


def test_served_ranks_miss_is_k() -> None:
    ranks = replay.served_ranks(np.array([[3, 1, 2], [5, 6, 7]]), np.array([2, 9]))
    assert ranks.tolist() == [2, 3]
