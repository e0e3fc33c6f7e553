"""Recommend: a subject's list from their state, the model and the ranking pipeline.

Transport-free: the gRPC servicers translate protos to the domain types used here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Sequence

import numpy as np

from serving.app.ports import Encoders, Impressions, ParameterSource, UserStates
from serving.app.queries import QueryEmbeddings
from serving.app.signals_cache import SignalsCache
from serving.app.throttled_log import ThrottledWarning
from serving.core.domain import (
    EventType,
    LoggedRecommendation,
    Recommendation,
    RecommendQuery,
    SimilarList,
    SimilarQuery,
    UserState,
)
from serving.core.errors import InvalidArgument, Unavailable
from serving.core.experiments import CONTROL_VARIANT
from serving.core.index import ItemIndex
from serving.core.itemspace import UserEncoding
from serving.core.parameters import Parameters, ParameterVersion
from serving.core.ranking.filter import Rules
from serving.core.ranking.pipeline import Ranking, RankingPipeline
from serving.core.ranking.retrieve import MatrixProduct, Retriever
from serving.core.validation import context_categories, validate_query, validate_similar

log = logging.getLogger(__name__)

OUTAGE_WARNING_EVERY_S = 10.0
"""During an outage every request falls back; one warning per period says so (with how many
were suppressed) instead of one per request."""
QUERY_CACHE_SIZE = 10_000
"""Query embeddings kept when the caller does not say (the setting query_cache_size)."""


class RecommenderService:
    """Recommend (with or without a free-text query), SimilarItems, and the replay of a
    policy that the preview estimates with."""

    def __init__(
        self,
        index: ItemIndex,
        encoders: Encoders,
        parameters: ParameterSource,
        user_states: UserStates,
        impressions: Impressions,
        retriever: Retriever | None = None,
        rng: np.random.Generator | None = None,
        queries: QueryEmbeddings | None = None,
    ) -> None:
        self.index = index
        self._encoders = encoders
        self.queries = queries or QueryEmbeddings(encoders, QUERY_CACHE_SIZE)
        self._parameters = parameters
        self._user_states = user_states
        self._impressions = impressions
        self._pipeline = RankingPipeline(
            retriever or MatrixProduct(), rng or np.random.default_rng()
        )
        self._signals = SignalsCache()
        self._variant_parameters: dict[tuple[int, str], Parameters] = {}
        self._outages = ThrottledWarning(log, OUTAGE_WARNING_EVERY_S)

    async def recommend(self, query: RecommendQuery) -> Recommendation:
        started = time.perf_counter()
        validate_query(query)
        version = self._parameters.current
        variant, params = self._variant(version, query.subject)
        # The query's embedding does not depend on the user: it runs beside the state
        # read and the user encoder, not after them.
        (
            (state, degraded, history, encoding, unencoded),
            (text_vector, unembedded),
        ) = await asyncio.gather(self._subject(query.subject, params), self._embed(query.query))
        degraded = degraded or unencoded or unembedded
        # No await from here on: the index cannot change while this request scores.
        ranking = self._rank(
            query.exclude_item_ids,
            query.context,
            params,
            state,
            history,
            encoding,
            text_vector,
            query.k,
        )
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

    def close(self) -> None:
        """Stop the worker that refreshes the catalogue signals."""
        self._signals.close()

    async def replay(self, state: UserState, params: Parameters, k: int) -> Ranking:
        """What ``params`` would show a user in ``state``, logging and counting nothing
        (the policy of the off-policy preview). Without the model there is no such
        policy to replay: Unavailable rather than the fallback's list."""
        history, encoding, unencoded = await self._encode_state(state, params)
        if unencoded:
            raise Unavailable("the user encoder is not available to replay the policy")
        return self._rank(frozenset(), {}, params, state, history, encoding, None, k)

    async def similar(self, query: SimilarQuery) -> SimilarList:
        """More like this: the pipeline with the anchor's content embedding as the query
        and no user vector (relevance is all similarity), under the filters of the subject
        when one is named (seen, disliked, negative feedback) and of the request; the
        anchor item itself stays out. Nothing is logged."""
        validate_similar(query)
        version = self._parameters.current
        subject = query.subject
        # Nobody named, nobody to assign to an experiment's variant: the current policy.
        variant, params = CONTROL_VARIANT, version.parameters
        degraded = False
        state = UserState()
        if subject is not None:
            variant, params = self._variant(version, subject)
            state, degraded = await self._user_state(subject)
        history = list(zip(state.item_ids, state.event_types, strict=True))
        excluded = query.exclude_item_ids
        anchor: np.ndarray | None
        if query.item_id is not None:
            anchor = self._anchor(query.item_id)
            excluded |= {query.item_id}
        else:
            anchor, unembedded = await self._embed(query.text)
            degraded = degraded or unembedded
        ranking = self._rank(
            excluded,
            query.context,
            params,
            state,
            history[-params.history_length :],
            None,
            anchor,
            query.k,
        )
        return SimilarList(tuple(ranking.items), degraded, variant, version.version)

    def _anchor(self, item_id: str) -> np.ndarray:
        """A catalogue item's content embedding (taken-down items included: their page
        may still be open); an id this server has never indexed is InvalidArgument."""
        position = self.index.position(item_id)
        if position is None:
            raise InvalidArgument("item_id", f"unknown item {item_id!r}")
        anchor: np.ndarray = self.index.arrays.content_of([position])[0]
        return anchor

    def _rules(
        self,
        exclude_item_ids: frozenset[str],
        context: dict[str, str],
        params: Parameters,
        state: UserState,
    ) -> Rules:
        """One request's filters: the variant's and the request's category rules both
        apply; disliked (and, by the parameters, seen) items stay out."""
        excluded = set(exclude_item_ids) | state.disliked
        if params.exclude_seen:
            excluded.update(state.item_ids)
            excluded.update(state.earlier_items)
        return Rules(
            excluded_ids=frozenset(excluded),
            include_categories=(
                params.include_categories,
                context_categories(context, "include_categories"),
            ),
            exclude_categories=frozenset(
                {*params.exclude_categories, *context_categories(context, "exclude_categories")}
            ),
        )

    def _rank(
        self,
        exclude_item_ids: frozenset[str],
        context: dict[str, str],
        params: Parameters,
        state: UserState,
        history: list[tuple[str, EventType]],
        encoding: UserEncoding | None,
        text_vector: np.ndarray | None,
        k: int,
    ) -> Ranking:
        """The pipeline over one index snapshot (synchronous), with this request's rules."""
        rules = self._rules(exclude_item_ids, context, params, state)
        half_lives = (params.popularity_half_life_hours, params.freshness_half_life_hours)
        signals = self._signals.signals(self.index, half_lives, time.time())
        return self._pipeline.rank(
            self.index, signals, params, rules, k, history, encoding, text_vector
        )

    async def _subject(
        self, subject: str, params: Parameters
    ) -> tuple[UserState, bool, list[tuple[str, EventType]], UserEncoding | None, bool]:
        """The subject's state (and whether it could not be read), the history the
        policy looks at, its encoding, and whether that encoding is missing."""
        state, degraded = await self._user_state(subject)
        history, encoding, unencoded = await self._encode_state(state, params)
        return state, degraded, history, encoding, unencoded

    async def _embed(self, text: str | None) -> tuple[np.ndarray | None, bool]:
        """A query's content embedding (None without a query), and whether a query could
        not be embedded: the list is then ranked without it (degraded)."""
        if text is None:
            return None, False
        try:
            vector = await self.queries.embed(text)
        except Unavailable as error:
            self._outages.warn("content encoder unavailable, ranking without the query: %s", error)
            return None, True
        width = self.index.arrays.content.shape[1]
        if vector.shape != (width,):
            self._outages.warn(
                "the content encoder answered %s wide, the item index holds %d: ranking"
                " without the query", vector.shape, width,
            )  # fmt: skip
            return None, True
        return vector, False

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
            return await self._user_states.load_user_state(subject), False
        except Unavailable:
            self._outages.warn("user state unavailable; answering without history")
            return UserState(), True

    async def _encode(self, history: Sequence[tuple[str, EventType]]) -> UserEncoding:
        """The user encoder over ``history``, left-padded to the model's length; the
        attention returned covers the real history only (oldest first). Encoded again,
        once, in the new space when the index switched versions during the call."""
        for _ in range(2):
            space = self.index.space
            if space is None:
                raise Unavailable("the item index has no model space any more")
            tokens, types, content, pad = self.index.encoder_inputs(space, history)
            # The version of the index's item space, not Triton's newest: Triton keeps
            # the version before the newest loaded, so requests are answered by the model
            # while the index places a new version (seconds at a million items).
            encoding = await self._encoders.encode_user(tokens, types, content, space.version)
            # A vector of another version would be scored against this version's item
            # space (with other tokens, maybe another width).
            if encoding.model_version != str(space.version):
                raise Unavailable(
                    f"Triton answered with user_encoder v{encoding.model_version} while the"
                    f" item index is in the space of v{space.version}"
                )
            if self.index.space is space:
                return UserEncoding(
                    encoding.vector, encoding.attention[pad:], encoding.model_version
                )
        raise Unavailable("the item index changed twice while the user was being encoded")
