"""Offline metrics against hand-computed cases (ties, seen-item filtering, coverage)."""

import math

import numpy as np
import pytest

from serving.training import baselines, datasets, pipeline
from serving.training.baselines import EASE, ContentSimilarity, Popularity
from serving.training.datasets import Split
from serving.training.evaluation import evaluate, metrics_from_ranks, ranks, top_k


def test_rank_counts_only_better_unseen_items():
    # Items (tokens 1..5) scored 0.9, 0.8, 0.7, 0.6, 0.5; target token 4 (0.6).
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    assert ranks(scores, np.array([4]), [np.array([], np.int64)]).tolist() == [3]
    # Tokens 1 and 3 were seen: only token 2 remains above the target.
    assert ranks(scores, np.array([4]), [np.array([1, 3])]).tolist() == [1]


def test_a_seen_target_is_still_ranked():
    # Repeat consumption: the target itself is in the history; it is not filtered away.
    scores = np.array([[0.9, 0.1, 0.5]])
    assert ranks(scores, np.array([3]), [np.array([3, 1])]).tolist() == [0]


def test_ties_count_against_the_target():
    scores = np.array([[0.5, 0.5, 0.5, 0.5], [1.0, 0.5, 0.5, 0.2]])
    # Row 0: three other items tie with the target -> rank 3. Row 1: one better, one tie.
    assert ranks(scores, np.array([2, 3]), [np.array([], np.int64)] * 2).tolist() == [3, 2]


def test_hit_rate_and_ndcg_by_hand():
    rank = np.array([0, 1, 9, 10, 25])
    recommended = np.array([[1, 2], [1, 3], [2, 3], [4, 1], [1, 2]])
    m = metrics_from_ranks(rank, recommended, num_items=8, cutoffs=(2, 10))
    assert m["HR@2"] == pytest.approx(2 / 5)
    assert m["NDCG@2"] == pytest.approx((1 + 1 / math.log2(3)) / 5)
    assert m["HR@10"] == pytest.approx(3 / 5)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5)
    assert m["coverage@2"] == pytest.approx(4 / 8)


def test_top_k_leaves_out_seen_items():
    scores = np.array([[0.1, 0.9, 0.8, 0.3]])
    assert top_k(scores, [np.array([2])], 2).tolist() == [[3, 4]]


class Fixed:
    """A scorer with given scores, one row per user."""

    def __init__(self, scores):
        self.rows = iter(np.asarray(scores, dtype=np.float64))

    def scores(self, inputs, types):
        return np.stack([next(self.rows) for _ in inputs])


def test_evaluate_filters_each_users_own_history():
    split = Split(
        users=np.array([0, 1]),
        inputs=(np.array([1]), np.array([2, 3])),
        input_types=(np.array([1]), np.array([1, 1])),
        targets=np.array([2, 4]),
    )
    # Same scores for both users: 1 > 2 > 3 > 4.
    scorer = Fixed([[4, 3, 2, 1], [4, 3, 2, 1]])
    report = evaluate(scorer, split, num_items=4, cutoffs=(1, 2))
    # User 0: item 1 seen -> target 2 is first. User 1: 2, 3 seen -> 1 beats target 4.
    assert report["HR@1"] == pytest.approx(0.5)
    assert report["HR@2"] == pytest.approx(1.0)
    assert report["NDCG@2"] == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_popularity_and_ease_score_as_defined():
    inputs = [np.array([1, 2]), np.array([1, 3]), np.array([1, 2])]
    assert Popularity(inputs, 3).scores(inputs[:1], [None]).tolist() == [[3, 2, 1]]
    ease = EASE(inputs, 3, l2=1.0)
    assert np.allclose(np.diag(ease.weights), 0)
    # Item 2 co-occurs with item 1 more than item 3 does, so a user of item 1 gets 2 first.
    scores = ease.scores([np.array([1])], [None])[0]
    assert scores[1] > scores[2]


def random_inputs(users: int, items: int, per_user: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, items + 1, size=rng.integers(1, per_user + 1)) for _ in range(users)]


def test_sparse_ease_matches_the_dense_closed_form():
    items = 120
    inputs = random_inputs(400, items, 12)
    dense = np.zeros((len(inputs), items))
    for row, sequence in enumerate(inputs):
        dense[row, sequence - 1] = 1.0  # repeats count once
    gram = dense.T @ dense + 50.0 * np.eye(items)
    precision = np.linalg.inv(gram)
    expected = -precision / np.diag(precision)
    np.fill_diagonal(expected, 0.0)
    ease = EASE(inputs, items, l2=50.0)
    assert np.allclose(ease.weights, expected, atol=1e-6 * np.abs(expected).max())
    assert np.allclose(ease.scores(inputs[:9], [None] * 9), dense[:9] @ expected, atol=1e-5)


def test_the_interaction_matrix_is_sparse_at_a_realistic_size():
    # 50,000 users x 17,000 items, about 440,000 interactions: dense float32 is 3.4 GB.
    inputs = random_inputs(50_000, 17_000, 17, seed=1)
    matrix = baselines.interaction_matrix(inputs, 17_000)
    assert matrix.shape == (50_000, 17_000)
    assert matrix.nnz == sum(len(np.unique(s)) for s in inputs)
    stored = matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    assert stored < 12 * matrix.nnz + 8 * 50_001  # a few bytes per interaction


def test_ease_refuses_before_allocating_what_it_may_not_use():
    items = 17_000
    with pytest.raises(baselines.TooLarge) as error:
        EASE(random_inputs(10, items, 3), items, memory_limit_bytes=2**30)
    assert str(error.value) == (
        "EASE needs 3.2 GiB for 17000 items (12 bytes per item pair),"
        " more than the 1.0 GiB it may use"
    )
    assert baselines.ease_memory_bytes(items) == 12 * items * items
    with pytest.raises(ValueError, match="l2 must be positive"):
        EASE(random_inputs(10, 5, 3), 5, l2=0.0)


def test_a_baseline_that_cannot_fit_is_skipped_with_a_note(monkeypatch):
    interactions = {
        f"u{u}": [(float(t), f"i{(u + t) % 9}", 1) for t in range(5)] for u in range(20)
    }
    dataset = datasets.build_dataset("tiny", interactions, {})
    monkeypatch.setattr(baselines, "available_memory_bytes", lambda: 100)
    result = pipeline.compare(dataset, {})
    assert "popularity" in result.reports
    assert not any(name.startswith("EASE") for name in result.reports)
    [note] = [n for n in result.notes if n.startswith("EASE skipped")]
    assert "EASE needs 0.0 GiB for 9 items" in note and "more than the 0.0 GiB" in note


def test_content_similarity_scores_the_cosine_to_the_recent_items_mean():
    content = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], np.float32)
    scorer = ContentSimilarity(content, recent=2)
    # The last two items (2 and 3) average to (0.35, 0.85) after normalising.
    profile = (np.array([0.0, 1.0]) + np.array([1.0, 1.0]) / np.sqrt(2)) / 2
    expected = np.array([[1.0, 0.0], [0.0, 1.0], [1 / np.sqrt(2)] * 2]) @ profile
    assert np.allclose(scorer.scores([np.array([1, 2, 3])], [None])[0], expected, atol=1e-6)
    assert not scorer.scores([np.array([], np.int64)], [None]).any()  # no history, no signal
