"""The orchestrator: one Recommend, LogFeedback, UpsertItems, ForgetUser at a time.

Transport-free: the gRPC servicers translate protos to the domain types used here.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from psycopg_pool import AsyncConnectionPool

from serving.domain import (
    NEGATIVE_EVENTS,
    EventType,
    FeedbackEvent,
    Item,
    Recommendation,
    RecommendQuery,
    ScoredItem,
    UserState,
)
from serving.errors import Unavailable
from serving.inference.client import UserEncoding
from serving.ranking import blend as scoring
from serving.ranking import exploration
from serving.ranking.experiments import Experiment
from serving.ranking.index import ItemIndex
from serving.ranking.parameters import (
    Exploration,
    Parameters,
    ParameterVersion,
)
from serving.ranking.validation import (
    check_id,
    context_categories,
    validate_events,
    validate_items,
    validate_query,
)
from serving.store import feedback as feedback_store
from serving.store import items as item_store
from serving.store.db import outage_as_unavailable
from serving.store.feedback import FeedbackResult
from serving.store.impressions import ImpressionWriter, LoggedRecommendation
from serving.throttled_log import ThrottledWarning

log = logging.getLogger(__name__)
CONTROL_VARIANT = "control"


OUTAGE_WARNING_EVERY_S = 10.0
"""During an outage every request falls back; one warning per period says so (with how many
were suppressed) instead of one per request."""

COLD_RANKED = 2000
"""How many of the least-shown items are kept ranked for exploration's candidate pool."""


@dataclass(frozen=True)
class CatalogueSignals:
    """Per-item signals that do not depend on the user, cached for a second."""

    second: int
    arrays: tuple[object, ...]
    half_lives: tuple[float, float]
    popularity: np.ndarray
    freshness: np.ndarray
    available: np.ndarray
    """Live items inside their availability window (at one-second resolution)."""
    coldest: np.ndarray
    """Live items, least shown first (newest first among equals)."""


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


def _no_variant(subject: str) -> str:
    return CONTROL_VARIANT


class Encoders(Protocol):
    """The models (Triton in production; fakes in unit tests)."""

    async def encode_user(
        self, item_ids: np.ndarray, event_types: np.ndarray, content: np.ndarray
    ) -> UserEncoding: ...

    async def encode_texts(self, texts: list[str], timeout_s: float = 60) -> np.ndarray: ...


class ParameterSource(Protocol):
    @property
    def current(self) -> ParameterVersion: ...

    experiment: Experiment | None


class RecommenderService:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        index: ItemIndex,
        encoders: Encoders,
        parameters: ParameterSource,
        impressions: ImpressionWriter,
    ) -> None:
        self._pool = pool
        self.index = index
        self._encoders = encoders
        self._parameters = parameters
        self._impressions = impressions
        self._rng = np.random.default_rng()
        self._signals_cache: CatalogueSignals | None = None
        self._variant_parameters: dict[tuple[int, str], Parameters] = {}
        self._outages = ThrottledWarning(log, OUTAGE_WARNING_EVERY_S)

    async def recommend(self, query: RecommendQuery) -> Recommendation:
        started = time.perf_counter()
        validate_query(query)
        version = self._parameters.current
        variant, params = self._variant(version, query.subject)
        state, degraded = await self._user_state(query.subject)
        history, encoding, unencoded = await self._encode_state(state, params)
        degraded = degraded or unencoded
        # No await from here on: the index cannot change while this request scores.
        ranking = self._rank(query, params, state, history, encoding)
        self.index.count_impressions(ranking.positions)
        recommendation = Recommendation(
            recommendation_id=str(uuid.uuid4()),
            items=tuple(ranking.items),
            model_version=encoding.model_version if encoding else "",
            degraded=degraded,
            variant=variant,
            parameter_version=version.version,
        )
        latency_ms = (time.perf_counter() - started) * 1000
        self._impressions.record(
            LoggedRecommendation(recommendation, query.user_id, query.session_id, latency_ms)
        )
        return recommendation

    async def replay(self, state: UserState, params: Parameters, k: int) -> Ranking:
        """What ``params`` would show a user in ``state``, logging and counting nothing
        (the policy of the off-policy preview). Without the model there is no such
        policy to replay: Unavailable rather than the fallback's list."""
        history, encoding, unencoded = await self._encode_state(state, params)
        if unencoded:
            raise Unavailable("the user encoder is not available to replay the policy")
        query = RecommendQuery(user_id="preview", session_id="", k=k)
        return self._rank(query, params, state, history, encoding)

    async def _encode_state(
        self, state: UserState, params: Parameters
    ) -> tuple[list[tuple[str, EventType]], UserEncoding | None, bool]:
        """The history the policy looks at, its encoding, and whether the encoding is
        missing although there is history (no model loaded yet, or Triton unavailable)."""
        history = list(zip(state.item_ids, state.event_types, strict=True))
        history = history[-params.history_length :]
        if self.index.space is None:
            return history, None, True
        if not history:
            return history, None, False
        try:
            return history, await self._encode(history), False
        except Unavailable as error:
            self._outages.warn("user encoder unavailable, using the fallback: %s", error)
            return history, None, True

    def _variant(self, version: ParameterVersion, subject: str) -> tuple[str, Parameters]:
        """The subject's A/B variant and the parameters it ranks with."""
        experiment = self._parameters.experiment
        if experiment is None:
            return CONTROL_VARIANT, version.parameters
        variant = experiment.assign(subject)
        key = (version.version, json.dumps(variant.overrides, sort_keys=True))
        params = self._variant_parameters.get(key)
        if params is None:
            if len(self._variant_parameters) > 1000:  # versions and experiments move on
                self._variant_parameters.clear()
            params = variant.parameters(version.parameters)
            self._variant_parameters[key] = params
        return variant.name, params

    async def _user_state(self, subject: str) -> tuple[UserState, bool]:
        """The subject's state, or an empty one (degraded) while the database is down."""
        try:
            with outage_as_unavailable():
                return await feedback_store.load_user_state(self._pool, subject), False
        except Unavailable:
            self._outages.warn("user state unavailable; answering without history")
            return UserState(), True

    def _rank(
        self,
        query: RecommendQuery,
        params: Parameters,
        state: UserState,
        history: list[tuple[str, EventType]],
        encoding: UserEncoding | None,
    ) -> Ranking:
        """Retrieve candidates, blend, filter and explain (synchronous: one index snapshot)."""
        index, arrays = self.index, self.index.arrays
        excluded = set(query.exclude_item_ids) | state.disliked
        if params.exclude_seen:
            excluded.update(state.item_ids)
        signals = self._signals(params)
        allowed = scoring.allowed_mask(signals.available, index.positions, excluded)
        # Business rules: the variant's and the request's category rules both apply.
        for include in (params.include_categories, context_categories(query, "include_categories")):
            if include:
                allowed &= index.in_categories(include)
        exclude = {*params.exclude_categories, *context_categories(query, "exclude_categories")}
        if exclude:
            allowed &= ~index.in_categories(sorted(exclude))
        popularity, freshness = signals.popularity, signals.freshness
        pool_size = max(params.candidate_pool_size, query.k)
        # Retrieval: the candidate pool by inner product (or by the prior without a model);
        # the blend then needs its signals for the candidates only.
        if encoding is not None:
            scores = arrays.vectors @ encoding.vector
            candidates = scoring.top_k(np.where(allowed, scores, -np.inf), pool_size)
        else:
            prior = params.popularity_weight * popularity + params.freshness_weight * freshness
            candidates = scoring.top_k(np.where(allowed, prior, -np.inf), pool_size)
        thompson = params.exploration == Exploration.THOMPSON and params.exploration_weight > 0
        if thompson:  # the least-shown items compete too, so exploration can reach them
            cold = signals.coldest[allowed[signals.coldest]][: max(10, pool_size // 10)]
            candidates = np.union1d(candidates, cold)
        candidates = candidates[allowed[candidates]]
        relevance = (
            scoring.relevance_signal(scores[candidates], scores)
            if encoding is not None
            else np.zeros(len(candidates))
        )
        negatives = [
            position
            for item_id, event_type in history
            if event_type in NEGATIVE_EVENTS
            if (position := index.position(item_id)) is not None
        ]
        clicks, shown = index.clicks[candidates], index.impressions[candidates]
        bonus = (
            params.exploration_weight * exploration.click_rate_samples(clicks, shown, self._rng)[0]
            if thompson
            else None
        )
        mixed = scoring.blend(
            params,
            relevance,
            popularity[candidates],
            freshness[candidates],
            scoring.negative_similarity(arrays.content[candidates], arrays.content[negatives]),
            bonus,
        )
        order, penalty = scoring.diversify(
            mixed.total,
            arrays.content[candidates],
            lambda: [index.primary_category(p) for p in candidates],
            query.k,
            params.diversity_lambda,
            params.max_per_category,
        )
        chosen = candidates[order]
        # The probability that the policy shows each candidate (off-policy evaluation):
        # certain for the list when nothing is random. Diversity is left out of the
        # Thompson estimate: it re-ranks within the same pool.
        inclusion = np.zeros(len(candidates))
        inclusion[order] = 1.0
        if thompson:
            inclusion = exploration.inclusion_propensity(
                mixed.exploitation,
                params.exploration_weight,
                clicks,
                shown,
                query.k,
                self._rng,
                listed=inclusion > 0,
            )
        explanations = self._explain(chosen, [i for i, _ in history], encoding)
        items = [
            ScoredItem(
                item_id=arrays.ids[position],
                score=float(mixed.total[row] - penalty[row]),
                components=mixed.components(row) | {"diversity": -float(penalty[row])},
                because_item_ids=explanations[rank],
                propensity=float(inclusion[row]),
            )
            for rank, (position, row) in enumerate(zip(chosen, order, strict=True))
        ]
        ranking = Ranking(items, chosen, candidates, inclusion, allowed)
        if params.exploration == Exploration.EPSILON and params.exploration_weight > 0:
            ranking = self._epsilon(ranking, min(params.exploration_weight, 1.0))
        return ranking

    def _epsilon(self, ranking: Ranking, epsilon: float) -> Ranking:
        """Epsilon-greedy: some slots show a uniformly random allowed item instead."""
        positions, explored, propensity, floor = exploration.epsilon_slots(
            ranking.positions, ranking.allowed, epsilon, self._rng
        )
        ids = self.index.arrays.ids
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

    def _signals(self, params: Parameters) -> CatalogueSignals:
        """Popularity, freshness, availability and the coldest items, recomputed at most
        once a second (or when the index, its statistics or the half-lives change)."""
        now = time.time()
        index = self.index
        arrays = (index.arrays, index.popularity, index.impressions)
        half_lives = (params.popularity_half_life_hours, params.freshness_half_life_hours)
        cached = self._signals_cache
        if (
            cached is not None
            and cached.second == int(now)
            and cached.half_lives == half_lives
            and all(a is b for a, b in zip(cached.arrays, arrays, strict=True))
        ):
            return cached
        popularity = scoring.popularity_signal(
            scoring.decayed_popularity(index.popularity, index.popularity_at, now, half_lives[0])
        )
        available = index.arrays.available(now)
        self._signals_cache = CatalogueSignals(
            second=int(now),
            arrays=arrays,
            half_lives=half_lives,
            popularity=popularity,
            freshness=scoring.freshness_signal(index.arrays.published, now, half_lives[1]),
            available=available,
            coldest=exploration.cold_items(
                available, index.impressions, index.arrays.published, COLD_RANKED
            ),
        )
        return self._signals_cache

    async def _encode(self, history: Sequence[tuple[str, EventType]]) -> UserEncoding:
        """The user encoder over ``history``, left-padded to the model's length; the
        attention returned covers the real history only (oldest first)."""
        space = self.index.space
        assert space is not None
        arrays, length = self.index.arrays, space.max_len
        history = history[-length:]
        pad = length - len(history)
        tokens = np.zeros(length, np.int64)
        types = np.zeros(length, np.int64)
        content = np.zeros((length, arrays.content.shape[1]), np.float32)
        for offset, (item_id, event_type) in enumerate(history):
            tokens[pad + offset] = space.token.get(item_id, 0)
            types[pad + offset] = int(event_type)
            position = self.index.position(item_id)
            if position is not None and position < len(arrays.ids):
                content[pad + offset] = arrays.content[position]
        encoding = await self._encoders.encode_user(tokens, types, content)
        # Triton switches versions on its own: until the index follows (within
        # index_refresh_s), a new version's vector would be scored against the old
        # version's item space (with other tokens, maybe another width).
        if encoding.model_version != str(space.version) or self.index.space is not space:
            raise Unavailable(
                f"Triton answered with user_encoder v{encoding.model_version} while the item"
                f" index is in the space of v{space.version}; the index follows shortly"
            )
        return UserEncoding(encoding.vector, encoding.attention[pad:], encoding.model_version)

    def _explain(
        self, chosen: np.ndarray, history_ids: list[str], encoding: UserEncoding | None
    ) -> list[tuple[str, ...]]:
        if encoding is None:
            return [() for _ in chosen]
        history_ids = history_ids[-len(encoding.attention) :]
        positions = [self.index.position(i) for i in history_ids]
        known = [
            (i, p, a)
            for i, p, a in zip(history_ids, positions, encoding.attention, strict=True)
            if p is not None
        ]
        content = self.index.arrays.content
        return scoring.because(
            content[chosen],
            content[[p for _, p, _ in known]],
            np.array([a for _, _, a in known], dtype=np.float32),
            [i for i, _, _ in known],
        )

    async def log_feedback(self, events: list[FeedbackEvent]) -> FeedbackResult:
        validate_events(events, datetime.now(UTC))
        params: Parameters = self._parameters.current.parameters
        experiment = self._parameters.experiment
        with outage_as_unavailable():
            return await feedback_store.record_feedback(
                self._pool,
                events,
                params.popularity_half_life_hours,
                (lambda subject: experiment.assign(subject).name) if experiment else _no_variant,
            )

    async def upsert_items(self, items: list[Item]) -> int:
        validate_items(items)
        embeddings = await self._encoders.encode_texts([item.text() for item in items])
        with outage_as_unavailable():
            await item_store.upsert_items(self._pool, items, embeddings)
        now = datetime.now(UTC)
        self.index.upsert(
            item_store.StoredItem(item, embedding, now, deleted=False)
            for item, embedding in zip(items, embeddings, strict=True)
        )
        return len(items)

    async def forget_user(self, user_id: str) -> int:
        check_id("user_id", user_id)
        with outage_as_unavailable():
            # Lists served to the user but not written yet would outlive the deletion.
            await self._impressions.flush()
            return await feedback_store.forget_user(self._pool, user_id)

    async def merge_session(self, session_id: str, user_id: str) -> int:
        check_id("session_id", session_id)
        check_id("user_id", user_id)
        with outage_as_unavailable():
            return await feedback_store.merge_session(self._pool, session_id, user_id)
