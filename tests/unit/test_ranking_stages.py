"""Each ranking stage in-process on synthetic arrays, and the pipeline that composes them."""

from __future__ import annotations

import numpy as np
import pytest

from serving.api.errors import STATUS_CODES
from serving.core import bfloat16
from serving.core.domain import EventType
from serving.core.errors import Status
from serving.core.index import IndexArrays
from serving.core.itemspace import UserEncoding
from serving.core.newitems import NewItems
from serving.core.parameters import Parameters
from serving.core.ranking import explore
from serving.core.ranking.explain import explanations
from serving.core.ranking.filter import Rules, allowed_items
from serving.core.ranking.pipeline import RankingPipeline
from serving.core.ranking.retrieve import MatrixProduct, Retrieval, by_prior
from serving.core.ranking.signals import catalogue_signals
from tests.unit import fakes

NOW = fakes.T0.timestamp()


def arrays(vectors: np.ndarray) -> IndexArrays:
    n = len(vectors)
    return IndexArrays(
        ids=tuple(str(i) for i in range(n)),
        content=np.zeros((n, 384), bfloat16.CODE),
        vectors=vectors.astype(np.float32),
        published=np.zeros(n),
        live=np.ones(n, bool),
        window=np.tile([-np.inf, np.inf], (n, 1)),
        learned=np.zeros(n, bool),
    )


def test_filter_applies_exclusions_and_every_category_rule() -> None:
    index = fakes.built_index()
    available = np.ones(len(index), bool)
    available[index.position("f")] = False  # outside its window
    everything = allowed_items(index, available, Rules(frozenset()))
    assert [index.arrays.ids[p] for p in np.flatnonzero(everything)] == list("abcde")
    rules = Rules(
        frozenset({"a", "unknown"}),
        include_categories=(("news", "sport"), (), ("news", "music")),
        exclude_categories=frozenset({"sport"}),
    )
    allowed = allowed_items(index, np.ones(len(index), bool), rules)
    assert [index.arrays.ids[p] for p in np.flatnonzero(allowed)] == ["b"]


def test_matrix_product_retrieves_the_best_allowed_items_first() -> None:
    vectors = np.array([[1.0, 0], [3, 0], [2, 0], [0, 5]])
    allowed = np.array([True, False, True, True])
    retrieval = MatrixProduct().retrieve(arrays(vectors), np.array([1.0, 0.1]), allowed, 2)
    assert retrieval.candidates.tolist() == [2, 0]  # 1 is not allowed; 3 scores 0.5
    assert retrieval.scores is not None
    assert np.allclose(retrieval.scores(np.array([3, 1])), [0.5, 3.0])
    relevance = retrieval.relevance(np.array([2, 0]))
    assert 0 < relevance[1] < relevance[0] < 1


def test_prior_retrieval_scores_no_relevance() -> None:
    retrieval = by_prior(np.array([0.1, 0.9, 0.5]), np.array([True, True, False]), 5)
    assert retrieval.candidates.tolist()[:2] == [1, 0]
    assert retrieval.relevance(np.array([1, 0])).tolist() == [0.0, 0.0]


class OnlyFirst:
    """A Retriever that is not the matrix product (as an index library would be)."""

    def __init__(self) -> None:
        self.calls = 0

    def retrieve(
        self,
        arrays: IndexArrays,
        query: np.ndarray,
        allowed: np.ndarray,
        k: int,
        new_items: NewItems | None = None,
    ) -> Retrieval:
        self.calls += 1
        first = np.flatnonzero(allowed)[:1]
        return Retrieval(first, lambda p: np.ones(len(p)), np.zeros(3))

    def by_content(
        self, arrays: IndexArrays, query: np.ndarray, allowed: np.ndarray, k: int
    ) -> Retrieval:
        return self.retrieve(arrays, query, allowed, k)

    def prepare(self, arrays: IndexArrays) -> None:
        pass


def test_the_pipeline_takes_any_retriever() -> None:
    retriever = OnlyFirst()
    index = fakes.built_index()
    params = Parameters(exploration="off", diversity_lambda=0.0, candidate_pool_size=10)
    ranking = RankingPipeline(retriever, np.random.default_rng(0)).rank(
        index,
        catalogue_signals(index, (72.0, 336.0), NOW),
        params,
        Rules(frozenset({"a"})),
        3,
        [],
        UserEncoding(np.ones(4, np.float32), np.zeros(0), "1"),
    )
    assert retriever.calls == 1 and [i.item_id for i in ranking.items] == ["b"]


def test_explore_switches_and_cold_items_joining_the_pool() -> None:
    assert explore.thompson(Parameters(exploration="thompson", exploration_weight=0.3))
    assert not explore.thompson(Parameters(exploration="thompson", exploration_weight=0.0))
    assert explore.epsilon(Parameters(exploration="epsilon", exploration_weight=3.0)) == 1.0
    assert explore.epsilon(Parameters(exploration="thompson")) == 0.0
    coldest = np.array([5, 4, 3, 2, 1, 0])
    allowed = np.array([True, True, True, False, True, True])
    pool = explore.with_coldest(np.array([0, 1]), coldest, allowed, pool_size=20)
    assert pool.tolist() == [0, 1, 2, 4, 5]  # ten at least: every allowed cold item here
    bonus = explore.thompson_bonus(
        0.5, np.array([0.0, 90]), np.array([100.0, 100]), np.random.default_rng(1)
    )
    assert bonus.shape == (2,) and 0 <= bonus[0] < bonus[1] <= 0.5


def test_explanations_point_at_the_similar_history_items() -> None:
    index = fakes.built_index()
    chosen = np.array([index.position("b"), index.position("d")])
    history = ["a", "c", "gone"]
    encoding = UserEncoding(np.zeros(4), np.array([0.2, 0.3, 0.5], np.float32), "1")
    because = explanations(index, chosen, history, encoding)
    assert because[0][0] == "a" and because[1][0] == "c"  # same category, same direction
    assert explanations(index, chosen, history, None) == [(), ()]


def ranked(params: Parameters, k: int, history: list[tuple[str, EventType]]) -> list[str]:
    index = fakes.built_index()
    encoding = UserEncoding(np.array([1.0, 0.5, 0, 0], np.float32), np.ones(len(history)), "1")
    signals = catalogue_signals(index, (72.0, 336.0), NOW)
    rules = Rules(frozenset(i for i, _ in history))
    ranking = RankingPipeline(MatrixProduct(), np.random.default_rng(0)).rank(
        index, signals, params, rules, k, history, encoding
    )
    assert len(ranking.positions) == len(ranking.items)
    assert all(0 < item.propensity <= 1 for item in ranking.items)
    return [item.item_id for item in ranking.items]


def test_pipeline_blends_diversifies_and_demotes_like_disliked_items() -> None:
    plain = Parameters(
        exploration="off", diversity_lambda=0.0, popularity_weight=0.0, freshness_weight=0.0
    )
    assert ranked(plain, 4, []) == ["a", "b", "c", "d"]
    # Disliking "a" demotes b, its neighbour in content (both news).
    disliked = ranked(
        plain.merged({"negative_feedback_penalty": 10.0}), 3, [("a", EventType.DISLIKE)]
    )
    assert disliked[0] == "c" and "a" not in disliked
    capped = ranked(plain.merged({"max_per_category": 1}), 3, [])
    assert capped == ["a", "c", "e"]  # one per category


def test_pipeline_epsilon_slots_explore_with_their_propensity() -> None:
    params = Parameters(exploration="epsilon", exploration_weight=1.0, diversity_lambda=0.0)
    index = fakes.built_index()
    signals = catalogue_signals(index, (72.0, 336.0), NOW)
    encoding = UserEncoding(np.array([1.0, 0, 0, 0], np.float32), np.zeros(0), "1")
    ranking = RankingPipeline(MatrixProduct(), np.random.default_rng(0)).rank(
        index, signals, params, Rules(frozenset()), 2, [], encoding
    )
    # Every slot explores: two of the four items outside the greedy list (a, b), each with
    # the floor propensity k x epsilon / 4; a greedy item stays only if its slot does not
    # explore (1 - epsilon = 0).
    assert {i.item_id for i in ranking.items} <= {"c", "d", "e", "f"}
    assert all(i.components == {"exploration": 1.0} for i in ranking.items)
    assert [i.propensity for i in ranking.items] == [0.5, 0.5] and ranking.floor == 0.5
    assert ranking.inclusion([index.position("a"), index.position("c")]).tolist() == [0.0, 0.5]


@pytest.mark.parametrize("status", list(Status))
def test_every_domain_status_has_its_grpc_code(status: Status) -> None:
    assert STATUS_CODES[status].name == status.value
