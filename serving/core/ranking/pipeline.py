"""The ranking pipeline, composed in one place: retrieve -> filter -> blend -> explore ->
diversify -> explain. Synchronous: a request ranks against one snapshot of the index.

Recommend, Recommend with a free-text query, and SimilarItems all rank here: a query is a
content embedding that brings its own candidate pool and takes its share of relevance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from serving.core.domain import NEGATIVE_EVENTS, EventType, ScoredItem
from serving.core.index import ItemIndex
from serving.core.itemspace import UserEncoding
from serving.core.newitems import NewItems, content_profile, recent_positive
from serving.core.parameters import Parameters
from serving.core.ranking import explore
from serving.core.ranking.blend import Blend, blend, negative_similarity, query_share
from serving.core.ranking.diversify import diversify
from serving.core.ranking.explain import explanations
from serving.core.ranking.filter import Rules, allowed_items
from serving.core.ranking.retrieve import Retrieval, Retriever, by_prior
from serving.core.ranking.signals import CatalogueSignals


@dataclass(frozen=True)
class Ranking:
    """One ranked list, and what off-policy evaluation needs: the probability that the
    policy shows any catalogue item, not only the ones it showed this time."""

    items: list[ScoredItem]
    positions: np.ndarray
    """Catalogue positions of ``items``."""
    candidates: np.ndarray
    candidate_inclusion: np.ndarray
    """Probability that each candidate is in the list."""
    allowed: np.ndarray
    floor: float = 0.0
    """Probability for an allowed item outside the candidates (epsilon exploration)."""

    def inclusion(self, positions: Sequence[int]) -> np.ndarray:
        candidates, inclusion = self.candidates.tolist(), self.candidate_inclusion.tolist()
        by_position = dict(zip(candidates, inclusion, strict=True))
        return np.array(
            [by_position.get(p, self.floor) if self.allowed[p] else 0.0 for p in positions]
        )


@dataclass(frozen=True)
class RankingPipeline:
    """The stages with what they share: the retriever and the random source."""

    retriever: Retriever
    rng: np.random.Generator

    def rank(
        self,
        index: ItemIndex,
        signals: CatalogueSignals,
        params: Parameters,
        rules: Rules,
        k: int,
        history: Sequence[tuple[str, EventType]],
        encoding: UserEncoding | None,
        query: np.ndarray | None = None,
    ) -> Ranking:
        """The top ``k`` for a user with ``history`` (oldest first) and ``encoding``;
        ``query``, a content embedding (a free-text request, or SimilarItems' anchor),
        adds its own pool and takes its share of relevance."""
        allowed = allowed_items(index, signals.available, rules)
        pool_size = max(params.candidate_pool_size, k)
        retrieval = self._retrieve(index, signals, params, encoding, history, allowed, pool_size)
        thompson = explore.thompson(params)
        candidates = retrieval.candidates
        by_query = None
        if query is not None:
            by_query = self.retriever.by_content(index.arrays, query, allowed, pool_size)
            candidates = np.union1d(candidates, by_query.candidates)
        if thompson:
            candidates = explore.with_coldest(candidates, signals.coldest, allowed, pool_size)
        candidates = candidates[allowed[candidates]]
        clicks, shown = index.clicks[candidates], index.impressions[candidates]
        mixed = blend(
            params,
            retrieval.relevance(candidates),
            signals.popularity[candidates],
            signals.freshness[candidates],
            _negative_feedback(index, candidates, history),
            explore.thompson_bonus(params.exploration_weight, clicks, shown, self.rng)
            if thompson
            else None,
            query=None if by_query is None else by_query.relevance(candidates),
            share=query_share(params, has_user_vector=encoding is not None),
        )
        total = mixed.total  # a property, summed on each access: once, not once per item
        order, penalty = diversify(
            total,
            lambda rows: index.arrays.content_of(candidates[rows]),
            lambda: [index.primary_category(p) for p in candidates],
            k,
            params.diversity_lambda,
            params.max_per_category,
        )
        inclusion = self._inclusion(params, mixed, clicks, shown, k, order, len(candidates))
        chosen = candidates[order]
        because = explanations(index, chosen, [i for i, _ in history], encoding)
        driven = mixed.query_driven
        items = [
            ScoredItem(
                item_id=index.arrays.ids[position],
                score=float(total[row] - penalty[row]),
                components=mixed.components(row) | {"diversity": -float(penalty[row])},
                because_item_ids=() if driven[row] else because[rank],
                propensity=float(inclusion[row]),
                because_query=bool(driven[row]),
            )
            for rank, (position, row) in enumerate(zip(chosen, order, strict=True))
        ]
        ranking = Ranking(items, chosen, candidates, inclusion, allowed)
        epsilon = explore.epsilon(params)
        return self._epsilon(index, ranking, epsilon) if epsilon else ranking

    def _retrieve(
        self,
        index: ItemIndex,
        signals: CatalogueSignals,
        params: Parameters,
        encoding: UserEncoding | None,
        history: Sequence[tuple[str, EventType]],
        allowed: np.ndarray,
        pool_size: int,
    ) -> Retrieval:
        """By the user vector, or by the popularity/freshness prior without a model."""
        if encoding is not None:
            new_items = NewItems(params.new_item_confidence, _profile(index, history))
            return self.retriever.retrieve(
                index.arrays, encoding.vector, allowed, pool_size, new_items
            )
        prior = params.popularity_weight * signals.popularity
        return by_prior(prior + params.freshness_weight * signals.freshness, allowed, pool_size)

    def _inclusion(
        self,
        params: Parameters,
        mixed: Blend,
        clicks: np.ndarray,
        shown: np.ndarray,
        k: int,
        order: np.ndarray,
        candidates: int,
    ) -> np.ndarray:
        """The probability that the policy shows each candidate (off-policy evaluation):
        certain for the list when nothing is random. Diversity is left out of the
        Thompson estimate: it re-ranks within the same pool."""
        inclusion = np.zeros(candidates)
        inclusion[order] = 1.0
        if not explore.thompson(params):
            return inclusion
        return explore.inclusion_propensity(
            mixed.exploitation,
            params.exploration_weight,
            clicks,
            shown,
            k,
            self.rng,
            listed=inclusion > 0,
        )

    def _epsilon(self, index: ItemIndex, ranking: Ranking, epsilon: float) -> Ranking:
        """Epsilon-greedy: some slots show a uniformly random allowed item instead."""
        positions, explored, propensity, floor = explore.epsilon_slots(
            ranking.positions, ranking.allowed, epsilon, self.rng
        )
        ids = index.arrays.ids
        items = [
            ScoredItem(ids[position], 0.0, {"exploration": 1.0}, (), float(p))
            if was_explored
            else replace(item, propensity=float(p))
            for item, position, was_explored, p in zip(
                ranking.items, positions, explored, propensity, strict=True
            )
        ]
        inclusion = np.where(np.isin(ranking.candidates, ranking.positions), 1.0 - epsilon, floor)
        return Ranking(items, positions, ranking.candidates, inclusion, ranking.allowed, floor)


def _profile(index: ItemIndex, history: Sequence[tuple[str, EventType]]) -> np.ndarray | None:
    """What the history's latest positive items are about (their texts' mean embedding)."""
    arrays = index.arrays
    positions = [index.position(item_id) for item_id, _ in history]
    known = [
        (p, int(t))
        for p, (_, t) in zip(positions, history, strict=True)
        if p is not None and p < len(arrays.ids)  # an item upserted after this snapshot
    ]
    recent = recent_positive([p for p, _ in known], [t for _, t in known])
    return content_profile(arrays.content_of(recent))


def _negative_feedback(
    index: ItemIndex, candidates: np.ndarray, history: Sequence[tuple[str, EventType]]
) -> np.ndarray:
    """Each candidate's highest content similarity to a disliked or skipped item of the
    history; no content is read without one (most requests)."""
    negatives = _negatives(index, history)
    if not negatives:
        return np.zeros(len(candidates))
    arrays = index.arrays
    return negative_similarity(arrays.content_of(candidates), arrays.content_of(negatives))


def _negatives(index: ItemIndex, history: Sequence[tuple[str, EventType]]) -> list[int]:
    """Catalogue positions of the history's disliked and skipped items."""
    return [
        position
        for item_id, event_type in history
        if event_type in NEGATIVE_EVENTS
        if (position := index.position(item_id)) is not None
    ]
