"""Seen items stay seen, however long ago: Recommend excludes the items of interactions
older than the history the state keeps (``UserState.earlier_items``), as the offline
protocol removes every item of the user's input. Found by benchmarks.served: on
ml-latest-small a fifth of the users have more interactions than the state keeps."""

from __future__ import annotations

import numpy as np

from serving.app.recommender import RecommenderService
from serving.core.domain import EventType, RecommendQuery, UserState
from serving.core.parameters import Parameters, ParameterVersion
from tests.unit import fakes

PLAIN = Parameters(
    exploration="off", diversity_lambda=0.0, popularity_weight=0.0, freshness_weight=0.0
)


class LongHistory:
    """A user whose oldest interactions (with "a", "b") fell out of the kept history."""

    async def load_user_state(self, subject: str) -> UserState:
        return UserState(("e",), (EventType.CLICK,), earlier_items=frozenset({"a", "b"}))


def service(params: Parameters) -> RecommenderService:
    source = fakes.FakeParameterSource(ParameterVersion(1, params, "test", "plain", fakes.T0))
    return RecommenderService(
        fakes.built_index(), fakes.FakeEncoders(), source, LongHistory(),
        fakes.FakeImpressions(), rng=np.random.default_rng(0),
    )  # fmt: skip


async def test_items_seen_before_the_kept_history_are_excluded() -> None:
    # The user vector (1, 0, 0, 0) ranks a, then b, above everything else.
    result = await service(PLAIN).recommend(RecommendQuery("long", "", k=3))
    assert not {"a", "b", "e"} & set(result.item_ids)
    assert len(result.item_ids) == 3


async def test_they_come_back_when_seen_items_are_allowed() -> None:
    params = PLAIN.merged({"exclude_seen": False})
    result = await service(params).recommend(RecommendQuery("long", "", k=2))
    assert result.item_ids == ["a", "b"]
