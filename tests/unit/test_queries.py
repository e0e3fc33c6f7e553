"""Intent in the user's own words, "more like this" and take-downs: the query stages on
synthetic arrays, and the use cases with the in-memory fakes of their ports (the
integration twin is tests/integration/test_queries.py, on real Triton and PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest

from serving.api.conversions import query_from_proto, similar_from_proto
from serving.app.items import ItemService
from serving.app.queries import QueryEmbeddings
from serving.app.recommender import RecommenderService
from serving.app.sync import IndexSync
from serving.client.types import recommend_request, similar_items_request
from serving.core import bfloat16
from serving.core.domain import EventType, Item, RecommendQuery, SimilarQuery
from serving.core.errors import InvalidArgument
from serving.core.index import IndexArrays, ItemIndex
from serving.core.itemspace import UserEncoding
from serving.core.parameters import Parameters, ParameterVersion, parse_parameters
from serving.core.ranking.blend import blend, query_share
from serving.core.ranking.filter import Rules
from serving.core.ranking.pipeline import RankingPipeline
from serving.core.ranking.retrieve import MatrixProduct, by_content
from serving.core.ranking.signals import catalogue_signals
from serving.core.validation import MAX_QUERY_LENGTH
from tests.unit import fakes
from tests.unit.fakes import T0, event

PLAIN = Parameters(
    exploration="off", diversity_lambda=0.0, popularity_weight=0.0, freshness_weight=0.0
)
NEWS, SPORT, MUSIC = ("a", "b"), ("c", "d"), ("e", "f")


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(384, np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


# -- the stages, on synthetic arrays ----------------------------------------------------


def test_by_content_is_the_nearest_allowed_content_first() -> None:
    content = np.stack([unit(1, 0), unit(0.9, 0.1), unit(0, 1), unit(1, 0.05)])
    n = len(content)
    arrays = IndexArrays(
        ids=tuple("wxyz"),
        content=bfloat16.encode(content),
        vectors=np.zeros((n, 0), np.float32),
        published=np.zeros(n),
        live=np.ones(n, bool),
        window=np.tile([-np.inf, np.inf], (n, 1)),
        learned=np.zeros(n, bool),
    )
    allowed = np.array([False, True, True, True])
    retrieval = by_content(arrays, unit(1, 0), allowed, 2)
    assert retrieval.candidates.tolist() == [3, 1]  # 0 is the closest but not allowed
    relevance = retrieval.relevance(np.array([3, 1, 2]))
    assert relevance[0] > relevance[1] > relevance[2]


def test_blend_splits_relevance_between_history_and_query() -> None:
    params = PLAIN.merged({"relevance_weight": 2.0, "query_weight": 0.25})
    history, query = np.array([0.8, 0.2]), np.array([0.1, 0.9])
    zero = np.zeros(2)
    mixed = blend(params, history, zero, zero, zero, query=query, share=0.25)
    assert mixed.relevance == pytest.approx(2.0 * 0.75 * history)
    assert mixed.query is not None and mixed.query == pytest.approx(2.0 * 0.25 * query)
    assert mixed.total == pytest.approx(mixed.relevance + mixed.query)
    assert mixed.components(1)["query"] == pytest.approx(0.45)
    assert mixed.query_driven.tolist() == [False, True]
    plain = blend(params, history, zero, zero, zero)
    assert plain.relevance == pytest.approx(2.0 * history) and "query" not in plain.components(0)
    assert not plain.query_driven.any()
    # Without a user vector there is nothing to share with: the query takes it all.
    assert query_share(params, has_user_vector=True) == 0.25
    assert query_share(params, has_user_vector=False) == 1.0


def test_query_weight_is_a_share_and_validated() -> None:
    assert Parameters().query_weight == pytest.approx(0.7)
    for bad in (-0.1, 1.5):
        with pytest.raises(InvalidArgument, match=r"^parameters\.query_weight"):
            parse_parameters({"query_weight": bad})


def rank(
    index: ItemIndex,
    query: np.ndarray | None,
    encoding: UserEncoding | None = None,
    params: Parameters = PLAIN,
    excluded: frozenset[str] = frozenset(),
    history: tuple[tuple[str, EventType], ...] = (("c", EventType.CLICK),),
) -> list[str]:
    pipeline = RankingPipeline(MatrixProduct(), np.random.default_rng(0))
    signals = catalogue_signals(index, (72.0, 336.0), T0.timestamp())
    ranking = pipeline.rank(
        index, signals, params, Rules(excluded), 6, list(history), encoding, query
    )
    return [item.item_id for item in ranking.items]


def test_the_pipeline_ranks_by_the_query_alone_and_with_a_history() -> None:
    index = fakes.built_index()
    # No user vector: the query's topic first, and its items say the query drove them.
    assert rank(index, fakes.content("e"))[:2] == list(MUSIC)
    # A news lover (user vector toward a, b) asking for music: the query's share wins...
    news_lover = UserEncoding(np.array([1, 0, 0, 0], np.float32), np.ones(1), "1")
    assert rank(index, None, news_lover)[:2] == list(NEWS)
    assert rank(index, fakes.content("e"), news_lover)[:2] == list(MUSIC)
    # ...unless the parameters give the query no share.
    deaf = PLAIN.merged({"query_weight": 0.0})
    assert rank(index, fakes.content("e"), news_lover, deaf)[:2] == list(NEWS)
    # Excluded items stay out whatever the query: the same filter stage.
    assert "e" not in rank(index, fakes.content("e"), news_lover, excluded=frozenset({"e"}))


# -- the use cases, with the fakes -------------------------------------------------------


def service(
    params: Parameters = PLAIN,
    encoders: fakes.FakeEncoders | None = None,
    index: ItemIndex | None = None,
    cache: int = 100,
) -> tuple[RecommenderService, fakes.FakeEncoders, fakes.FakeFeedback, fakes.FakeImpressions]:
    encoders = encoders or fakes.FakeEncoders()
    feedback, impressions = fakes.FakeFeedback(), fakes.FakeImpressions()
    recommender = RecommenderService(
        index or fakes.built_index(),
        encoders,
        fakes.FakeParameterSource(ParameterVersion(3, params, "test", "plain", T0)),
        feedback,
        impressions,
        rng=np.random.default_rng(0),
        queries=QueryEmbeddings(encoders, cache),
    )
    return recommender, encoders, feedback, impressions


async def test_a_query_alone_serves_an_anonymous_visitor_and_is_cached() -> None:
    recommender, encoders, _, impressions = service()
    visitor = RecommendQuery("", "s1", k=2, query="something like e")
    first = await recommender.recommend(visitor)
    assert first.item_ids == list(MUSIC) and not first.degraded
    for item in first.items:
        assert item.because_query and item.because_item_ids == ()
        assert item.components["query"] > 0 and item.components["relevance"] == 0
    assert [r.recommendation for r in impressions.recorded] == [first]  # logged as any list
    second = await recommender.recommend(visitor)
    assert second.item_ids == first.item_ids
    assert encoders.queries == ["something like e"]  # the second came from the cache
    assert (recommender.queries.hits, recommender.queries.misses) == (1, 1)


async def test_a_query_steers_a_user_with_a_history_and_names_itself() -> None:
    recommender, encoders, feedback, _ = service()
    feedback.events["e1"] = event("e1", "c")  # a history: the user vector (1,0,0,0) = news
    plain = await recommender.recommend(RecommendQuery("u1", "", k=2))
    assert plain.item_ids == list(NEWS)
    assert all("query" not in item.components for item in plain.items)
    asked = await recommender.recommend(RecommendQuery("u1", "", k=2, query="more like e"))
    assert asked.item_ids == list(MUSIC) and encoders.user_calls  # both models were asked
    assert all(item.because_query for item in asked.items)
    # A disliked item stays out whatever the query.
    feedback.events["e2"] = event("e2", "e", EventType.DISLIKE)
    again = await recommender.recommend(RecommendQuery("u1", "", k=5, query="more like e"))
    assert "e" not in again.item_ids and len(again.items) == 4  # (f is demoted: like e)


async def test_bad_queries_are_refused_before_any_model_call() -> None:
    recommender, encoders, _, impressions = service()
    for bad, problem in (("   ", "must not be empty"), ("x" * (MAX_QUERY_LENGTH + 1), "longer")):
        with pytest.raises(InvalidArgument, match=rf"^query: {problem}"):
            await recommender.recommend(RecommendQuery("u1", "", k=2, query=bad))
    with pytest.raises(InvalidArgument, match=r"^query: contains control"):
        await recommender.recommend(RecommendQuery("u1", "", k=2, query="a\x07b"))
    assert encoders.queries == [] and impressions.recorded == []
    # Exactly the limit, with whitespace inside, is fine.
    query = ("word e\n" * MAX_QUERY_LENGTH)[:MAX_QUERY_LENGTH]
    assert len((await recommender.recommend(RecommendQuery("u1", "", k=2, query=query))).items)


async def test_without_the_content_encoder_the_list_is_served_degraded() -> None:
    encoders = fakes.FakeEncoders()
    recommender, _, _, _ = service(encoders=encoders)
    encoders.down = True
    result = await recommender.recommend(RecommendQuery("", "s1", k=3, query="like e"))
    assert result.degraded and len(result.items) == 3
    assert all("query" not in item.components for item in result.items)
    encoders.down = False  # nothing was cached while it was down
    assert not (await recommender.recommend(RecommendQuery("", "s1", k=3, query="like e"))).degraded


async def test_the_query_cache_is_bounded_least_recently_used_first() -> None:
    encoders = fakes.FakeEncoders()
    cache = QueryEmbeddings(encoders, size=2)
    for text in ("a", "b", "a", "c", "  a  ", "b"):
        await cache.embed(text)
    # "a" was used again before "c" arrived, so "b" went out; "  a  " is "a".
    assert encoders.queries == ["a", "b", "c", "b"]
    assert len(cache) == 2 and (cache.hits, cache.misses) == (2, 4)
    uncached = QueryEmbeddings(encoders, size=0)
    await uncached.embed("d")
    await uncached.embed("d")
    assert len(uncached) == 0 and encoders.queries[-2:] == ["d", "d"]


async def test_similar_items_of_an_item_or_a_text_under_the_same_rules() -> None:
    recommender, encoders, feedback, impressions = service()
    similar = await recommender.similar(SimilarQuery(k=3, item_id="e"))
    assert similar.item_ids[0] == "f" and "e" not in similar.item_ids  # never the anchor
    assert similar.parameter_version == 3 and not similar.degraded
    assert encoders.queries == [] and encoders.user_calls == []  # the stored embedding
    by_text = await recommender.similar(SimilarQuery(k=2, text="sounds like c"))
    assert by_text.item_ids == list(SPORT)
    # A named subject's dislikes stay out; the request's exclusions and categories apply.
    feedback.events["e1"] = event("e1", "f", EventType.DISLIKE)
    mine = await recommender.similar(SimilarQuery(k=5, item_id="e", user_id="u1"))
    assert "f" not in mine.item_ids
    ruled = await recommender.similar(
        SimilarQuery(k=5, item_id="e", exclude_item_ids=frozenset({"a"}),
                     context={"include_categories": "news,music"})
    )  # fmt: skip
    assert ruled.item_ids == ["f", "b"]
    assert impressions.recorded == []  # "more like this" lists are not logged


async def test_similar_items_refuses_bad_anchors() -> None:
    recommender, _, _, _ = service()
    cases = [
        (SimilarQuery(k=3, item_id="nope"), r"^item_id: unknown item 'nope'"),
        (SimilarQuery(k=3), r"^item_id: give either"),
        (SimilarQuery(k=3, item_id="e", text="both"), r"^item_id: give either"),
        (SimilarQuery(k=3, text=""), r"^text: must not be empty"),
        (SimilarQuery(k=0, item_id="e"), r"^k:"),
    ]
    for query, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            await recommender.similar(query)


async def test_delete_items_takes_items_down_everywhere_and_upsert_brings_them_back() -> None:
    catalogue, encoders, index = fakes.FakeCatalogue(), fakes.FakeEncoders(), ItemIndex()
    items = ItemService(catalogue, encoders, index)
    await items.upsert_items(fakes.catalogue_items())
    replica = ItemIndex()  # another server, following the catalogue on its refresh loop
    sync = IndexSync(catalogue, fakes.FakeItemSpaces(), fakes.FakeServedModels(None), replica, 60)
    await sync.refresh()
    here, _, _, _ = service(index=index)
    there, _, _, _ = service(index=replica)

    async def shown(recommender: RecommenderService) -> set[str]:
        listed = await recommender.recommend(RecommendQuery("u1", "", k=6, query="like e"))
        similar = await recommender.similar(SimilarQuery(k=6, item_id="f"))
        return set(listed.item_ids) | set(similar.item_ids)

    assert "e" in await shown(here) and "e" in await shown(there)
    with pytest.raises(InvalidArgument, match=r"^item_ids\[1\]: unknown item 'zz'"):
        await items.delete_items(["e", "zz"])
    assert not any(s.deleted for s in catalogue.items.values())  # nothing was written
    catalogue.tick()
    assert await items.delete_items(["e", "e"]) == 1
    assert "e" not in await shown(here)  # this server: at once
    assert "e" in await shown(there)  # another: until its next refresh...
    await sync.refresh()
    assert "e" not in await shown(there)
    assert await items.delete_items(["e"]) == 0  # already down: a retry counts none
    with pytest.raises(InvalidArgument, match=r"^item_ids: must not be empty"):
        await items.delete_items([])
    catalogue.tick()
    await items.upsert_items([Item("e", "title e", categories=("music",))])
    await sync.refresh()
    assert "e" in await shown(here) and "e" in await shown(there)


# -- the edges: the SDK's requests and the servicer's conversions -------------------------


def test_the_sdk_and_the_servicer_agree_on_queries_and_anchors() -> None:
    plain = recommend_request("u", 5, "", (), {})
    assert not plain.HasField("query")  # unset, not empty: no query
    assert query_from_proto(plain).query is None
    asked = query_from_proto(recommend_request("u", 5, "", (), {}, "night sky"))
    assert asked.query == "night sky"
    # An empty query is sent as such (and refused by the server, not dropped here).
    assert query_from_proto(recommend_request("u", 5, "", (), {}, "")).query == ""
    by_item = similar_from_proto(similar_items_request("e", 3, {"user_id": "u1"}))
    assert (by_item.item_id, by_item.text, by_item.user_id, by_item.k) == ("e", None, "u1", 3)
    by_text = similar_from_proto(
        similar_items_request(
            None, 4, {"text": "like c", "exclude": ["a"], "context": {"include_categories": "x"}}
        )
    )
    assert (by_text.item_id, by_text.text) == (None, "like c")
    assert by_text.exclude_item_ids == {"a"} and by_text.context == {"include_categories": "x"}
    neither = similar_from_proto(similar_items_request(None, 4, {}))
    assert (neither.item_id, neither.text) == (None, None)
