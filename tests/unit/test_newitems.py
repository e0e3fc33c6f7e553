"""Items newer than the model scored on the known items' scale: the formula, its edge
cases, the index and ranking that serve it, and the offline scorer that evaluates it."""

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
import torch

from serving.core.domain import EventType, Item
from serving.core.index import ItemIndex, StoredItem
from serving.core.itemspace import ItemSpace, UserEncoding
from serving.core.newitems import (
    NewItems,
    calibrated_new_scores,
    content_profile,
    recent_positive,
    reference_sample,
    user_scores,
)
from serving.core.parameters import Parameters
from serving.core.ranking.filter import Rules
from serving.core.ranking.pipeline import RankingPipeline
from serving.core.ranking.retrieve import MatrixProduct
from serving.core.ranking.signals import catalogue_signals
from serving.models.user_encoder import UserEncoder, UserEncoderConfig
from serving.training.evaluation import ModelScorer
from serving.training.export import item_space
from serving.training.trainer import content_table, left_pad

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_new_item_lands_as_far_above_the_known_mean_as_its_content_is() -> None:
    known_content = np.array([0.0, 1.0, 2.0, 3.0])  # mean 1.5, std sqrt(1.25)
    known = np.array([10.0, 20.0, 30.0, 40.0])  # mean 25, std 10 * sqrt(1.25)
    z = (np.array([4.0, 1.5]) - 1.5) / np.sqrt(1.25)
    placed = calibrated_new_scores(np.array([4.0, 1.5]), known, known_content)
    assert np.allclose(placed, 25 + 10 * np.sqrt(1.25) * z)
    # Confidence scales the deviation; 0 puts every new item at the known mean.
    half = calibrated_new_scores(np.array([4.0, 1.5]), known, known_content, confidence=0.5)
    assert np.allclose(half, 25 + 0.5 * 10 * np.sqrt(1.25) * z)
    assert np.allclose(calibrated_new_scores(np.array([4.0]), known, known_content, 0.0), 25)


def test_rows_are_users_and_each_is_calibrated_on_its_own() -> None:
    known_content = np.array([[0.0, 2.0], [0.0, 4.0]])
    known = np.array([[0.0, 10.0], [100.0, 200.0]])
    placed = calibrated_new_scores(np.array([[2.0], [2.0]]), known, known_content)
    assert np.allclose(placed, [[10.0], [150.0]])


@pytest.mark.parametrize(
    ("known", "known_content"),
    [
        (np.array([1.0, 2.0, 3.0]), np.zeros(3)),  # an ID-only model: no content part
        (np.array([1.0]), np.array([0.5])),  # one known item: no spread to go by
    ],
)
def test_without_a_usable_scale_new_items_keep_their_scores(known, known_content) -> None:
    assert np.allclose(calibrated_new_scores(np.array([0.7]), known, known_content), [0.7])


def test_the_reference_is_every_known_item_up_to_the_sample_size_then_a_spread() -> None:
    assert reference_sample(np.arange(100)).tolist() == list(range(100))
    sample = reference_sample(np.arange(10_000))
    assert 2048 <= len(sample) < 2600 and sample[0] == 0 and sample[-1] > 9_000


def test_a_topic_the_model_cannot_express_is_carried_by_text_similarity() -> None:
    # The content parts say nothing about the new items (flat), but they are the ones
    # whose text is closest to the user's recent items: by similarity they lead.
    known_content, new_content = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0])
    known = np.array([5.0, 6.0, 7.0])
    similarity = (np.array([0.9, 0.1]), np.array([0.1, 0.2, 0.3]))
    placed = calibrated_new_scores(new_content, known, known_content, 1.0, similarity)
    z_similarity = (0.9 - 0.2) / np.std([0.1, 0.2, 0.3])
    assert np.isclose(placed[0], 6 + np.std(known) * z_similarity)  # the larger deviation
    assert np.isclose(placed[1], 6.0)  # its content part (z = 0) beats its similarity
    flat = calibrated_new_scores(new_content, known, np.zeros(3), 1.0, similarity)
    assert np.isclose(flat[0], placed[0])  # an ID-only model: similarity alone


def test_the_profile_is_the_latest_positive_items_text() -> None:
    tokens = list(range(1, 15))
    types = [1] * 12 + [3, 4]  # the two latest: a dislike and a skip
    assert recent_positive(tokens, types) == list(range(3, 13))
    assert content_profile(np.zeros((0, 4))) is None
    profile = content_profile(np.array([[2.0, 0, 0, 0], [0, 3.0, 0, 0]]))
    assert profile is not None and np.allclose(profile, [2**-0.5, 2**-0.5, 0, 0])


def _stored(item_id: str, content: np.ndarray) -> StoredItem:
    return StoredItem(Item(item_id, item_id), content.astype(np.float32), NOW, False)


def _topics_index(spill: float = 0.0) -> tuple[ItemIndex, np.ndarray]:
    """Known items k0..k9 with large learned embeddings, on topic A (and up to ``spill``
    of topic B); new items n0..n4 on topic B, which a user who clicked new items points at."""
    topic_a, topic_b = np.zeros(384), np.zeros(384)
    topic_a[0], topic_b[1] = 1.0, 1.0
    rng = np.random.default_rng(0)
    known = [f"k{i}" for i in range(10)]
    space = ItemSpace(
        version=1,
        max_len=5,
        vocabulary=(*known, "zeroed"),
        # The user vector (1, 1) meets every learned row strongly; "zeroed" is a
        # vocabulary item training never saw (its row left at zero): new as well.
        item_embeddings=np.vstack([rng.uniform(4, 5, (10, 2)), np.zeros((1, 2))]),
        projection_weight=np.vstack([topic_a, topic_b]).astype(np.float32),
        projection_bias=np.zeros(2, np.float32),
    )
    index = ItemIndex()
    items = [
        _stored(k, topic_a * rng.uniform(0.1, 1) + topic_b * rng.uniform(0, spill)) for k in known
    ]
    items += [_stored(f"n{i}", topic_b * (1 - 0.1 * i)) for i in range(5)]
    index.upsert([*items, _stored("zeroed", topic_b * 0.95)])
    index.set_space(space)
    return index, np.array([1.0, 1.0], np.float32)


def test_new_items_compete_with_known_ones_instead_of_sinking() -> None:
    index, user = _topics_index()
    arrays = index.arrays
    assert [arrays.ids[p] for p in arrays.unlearned] == [*(f"n{i}" for i in range(5)), "zeroed"]
    raw = arrays.vectors @ user
    assert raw[arrays.unlearned].max() < raw[~np.isin(np.arange(16), arrays.unlearned)].min()
    retrieval = MatrixProduct().retrieve(arrays, user, np.ones(16, bool), 5)
    top = [arrays.ids[p] for p in retrieval.candidates]
    assert "n0" in top and "zeroed" in top  # the new items whose text is closest to the user
    scores = user_scores(arrays, user, NewItems())
    order = np.argsort(-scores[arrays.unlearned])
    assert [arrays.ids[arrays.unlearned[i]] for i in order][:2] == ["n0", "zeroed"]


def test_confidence_zero_keeps_new_items_out_of_the_top() -> None:
    index, user = _topics_index()
    arrays = index.arrays
    retrieval = MatrixProduct().retrieve(arrays, user, np.ones(16, bool), 5, NewItems(0.0))
    assert all(arrays.ids[p].startswith("k") for p in retrieval.candidates)


def test_the_offline_scorer_scores_as_the_orchestrator_serves() -> None:
    torch.manual_seed(0)
    config = UserEncoderConfig(num_items=30, dim=8, max_len=5, layers=1, heads=1)
    model = UserEncoder(config).eval()
    with torch.no_grad():
        model.item_embedding.weight[21:] = 0.0  # tokens 21..30: newer than the model
    content = np.random.default_rng(1).normal(size=(30, 384)).astype(np.float32)
    vocabulary = tuple(f"i{t}" for t in range(1, 31))
    index = ItemIndex()
    index.upsert([_stored(item_id, content[t]) for t, item_id in enumerate(vocabulary)])
    index.set_space(item_space(model, vocabulary, content, 1))
    history, types = [np.array([3, 22, 7])], [np.ones(3, np.int64)]
    table = content_table(content)
    offline = ModelScorer(model, table).scores(history, types)[0]
    with torch.inference_mode():
        tokens, kinds = left_pad(history, types, 3)
        hidden, _ = model(tokens, kinds, table[tokens])
    profile = content_profile(table[[3, 22, 7]].numpy())  # the content the index holds
    served = user_scores(index.arrays, hidden[0, -1].numpy(), NewItems(1.0, profile))
    assert np.allclose(offline, served, atol=1e-4)
    raw = ModelScorer(model, table, calibrate_new=False).scores(history, types)[0]
    assert np.allclose(raw[:20], offline[:20], atol=1e-5)
    assert not np.allclose(raw[20:], offline[20:], atol=1e-3)


def test_the_pipeline_ranks_a_new_topic_the_user_just_clicked_first() -> None:
    """The projection knows topic A only (topic B lies in its null space): the user's
    clicks on new topic-B items are what bring the other topic-B items to the top."""
    index, _ = _topics_index(spill=0.2)
    space = index.space
    assert space is not None
    blind = np.zeros_like(space.projection_weight)
    blind[:, 0] = 1.0  # both item-space axes read topic A only
    index.set_space(replace(space, projection_weight=blind))
    history = [("n0", EventType.CLICK), ("n1", EventType.CLICK)]
    params = Parameters(exploration="off", diversity_lambda=0.0, popularity_weight=0.0,
                        freshness_weight=0.0)  # fmt: skip
    signals = catalogue_signals(index, (72.0, 336.0), NOW.timestamp())
    encoding = UserEncoding(np.array([1.0, 1.0], np.float32), np.zeros(2), "1")

    def top(confidence: float) -> list[str]:
        ranking = RankingPipeline(MatrixProduct(), np.random.default_rng(0)).rank(
            index, signals, params.merged({"new_item_confidence": confidence}),
            Rules(frozenset({"n0", "n1"})), 4, history, encoding,
        )  # fmt: skip
        return [item.item_id for item in ranking.items]

    assert set(top(1.0)) == {"n2", "n3", "n4", "zeroed"}
    assert all(item_id.startswith("k") for item_id in top(0.0))
