import numpy as np
import pytest

from serving.core import ranking as scoring
from serving.core.parameters import Parameters


def test_top_k_orders_largest_first_with_stable_ties():
    values = np.array([0.1, 0.9, 0.5, 0.9, -np.inf])
    assert scoring.top_k(values, 3).tolist() == [1, 3, 2]
    assert scoring.top_k(values, 10).tolist() == [1, 3, 2, 0, 4]
    assert scoring.top_k(values, 0).tolist() == []


def test_allowed_mask_removes_excluded_and_dead_items():
    live = np.array([True, True, False, True])
    mask = scoring.allowed_mask(live, {"a": 0, "b": 1, "c": 2, "d": 3}, {"b", "unknown"})
    assert mask.tolist() == [True, False, False, True]


def test_popularity_decays_by_half_life():
    now = 1_000_000.0
    popularity = np.array([8.0, 8.0])
    at = np.array([now, now - 2 * 3600])
    assert scoring.decayed_popularity(popularity, at, now, 2.0).tolist() == [8.0, 4.0]
    signal = scoring.popularity_signal(np.array([0.0, 3.0, 15.0]))
    assert signal[0] == 0 and signal[2] == 1 and 0 < signal[1] < 1


def test_freshness_is_one_for_new_items_and_zero_without_a_date():
    now = 10_000.0
    fresh = scoring.freshness_signal(np.array([now, now - 3600, np.nan]), now, 1.0)
    assert fresh.tolist() == [1.0, 0.5, 0.0]


def test_relevance_is_monotonic_and_bounded():
    scores = np.array([3.0, -1.0, 0.5, 10.0])
    relevance = scoring.relevance_signal(scores, scores)
    assert np.all((relevance > 0) & (relevance < 1))
    assert np.argsort(relevance).tolist() == np.argsort(scores).tolist()


def test_blend_weights_components_and_total():
    params = Parameters(
        relevance_weight=2,
        popularity_weight=0.5,
        freshness_weight=0.0,
        negative_feedback_penalty=1.0,
    )
    mixed = scoring.blend(
        params,
        np.array([0.5, 0.9]),
        np.array([1.0, 0.0]),
        np.array([1.0, 1.0]),
        np.array([0.0, 0.8]),
    )
    assert mixed.total.tolist() == pytest.approx([1.5, 1.0])
    assert mixed.components(1) == pytest.approx(
        {
            "relevance": 1.8,
            "popularity": 0.0,
            "freshness": 0.0,
            "negative_feedback": -0.8,
            "exploration": 0.0,
        }
    )


def test_negative_similarity_demotes_items_like_the_disliked_one():
    content = np.eye(3, dtype=np.float32)
    negatives = content[[0]]
    assert scoring.negative_similarity(content, negatives).tolist() == [1.0, 0.0, 0.0]
    assert scoring.negative_similarity(content, negatives[:0]).tolist() == [0.0, 0.0, 0.0]


def test_because_picks_attended_similar_history_items():
    items = np.array([[1.0, 0.0], [0.0, 1.0]])
    history = np.array([[1.0, 0.0], [0.7, 0.7], [0.0, 1.0]])
    attention = np.array([0.1, 0.6, 0.3])
    explained = scoring.because(items, history, attention, ["h0", "h1", "h2"])
    assert explained == [("h1", "h0"), ("h1", "h2")]
    assert scoring.because(items, history[:0], attention[:0], []) == [(), ()]


def test_diversify_without_diversity_or_cap_keeps_the_score_order():
    scores = np.array([0.2, 0.9, 0.5])
    order, penalty = scoring.diversify(
        scores, np.eye(3).__getitem__, lambda: ["a", "a", "a"], 3, 0.0, 0
    )
    assert order.tolist() == [1, 2, 0] and not penalty.any()


def test_diversify_trades_score_for_novelty():
    # Rows 0 and 1 are near duplicates; row 2 is different but scores a little lower.
    content = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]])
    scores = np.array([1.0, 0.95, 0.8])
    order, _ = scoring.diversify(scores, content.__getitem__, lambda: ["x", "x", "y"], 2, 0.0, 0)
    assert order.tolist() == [0, 1]
    order, penalty = scoring.diversify(
        scores, content.__getitem__, lambda: ["x", "x", "y"], 2, 0.5, 0
    )
    assert order.tolist() == [0, 2] and penalty[2] == 0.0


def test_diversify_caps_items_per_category():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    order, _ = scoring.diversify(
        scores, np.eye(4).__getitem__, lambda: ["x", "x", "x", "y"], 3, 0.0, 2
    )
    assert order.tolist() == [0, 1, 3]


def test_diversify_fills_the_list_past_a_shortlist_when_capped():
    scores = np.linspace(1.0, 0.0, 200)
    categories = ["x"] * 150 + [f"c{i}" for i in range(50)]
    order, _ = scoring.diversify(scores, np.eye(200).__getitem__, lambda: categories, 10, 0.1, 1)
    assert len(order) == 10 and order[0] == 0 and set(order[1:]) <= set(range(150, 200))


def _greedy_over_every_row(scores, content, k, diversity):
    """The plain MMR greedy over every row (the shortlist must give its list)."""
    closest, picked, penalty = np.zeros(len(scores)), [], np.zeros(len(scores))
    for _ in range(k):
        adjusted = np.where(np.isin(np.arange(len(scores)), picked), -np.inf, scores)
        row = int(np.argmax(adjusted - diversity * closest))
        penalty[row] = diversity * closest[row]
        picked.append(row)
        closest = np.maximum(closest, content @ content[row])
    return picked, penalty


def test_diversify_reads_only_the_shortlist_and_picks_as_over_every_row():
    rng = np.random.default_rng(7)
    content = rng.standard_normal((300, 16))
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    scores = np.round(rng.random(300), 2)  # ties, broken by the lower row
    read = []

    def content_of(rows):
        read.append(len(rows))
        return content[rows]

    order, penalty = scoring.diversify(scores, content_of, lambda: [], 10, 0.3, 0)
    expected, expected_penalty = _greedy_over_every_row(scores, content, 10, 0.3)
    assert order.tolist() == expected
    np.testing.assert_allclose(penalty, expected_penalty, atol=1e-12)
    assert read == [50]
