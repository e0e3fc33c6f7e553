"""The use cases with in-memory fakes of their ports: the logic, in milliseconds, next to
the integration tests that run the same calls on real PostgreSQL and Triton."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from serving.app import sync as sync_module
from serving.app.admin import AdminService
from serving.app.feedback import FeedbackService
from serving.app.items import ItemService
from serving.app.preview import PreviewService
from serving.app.recommender import RecommenderService
from serving.app.sync import IndexSync, ParameterCache
from serving.core.domain import EventType, Item, LoggedList, RecommendQuery, UserState
from serving.core.errors import InvalidArgument, NotFound, Unavailable
from serving.core.experiments import Experiment, Variant
from serving.core.index import IndexArrays, ItemIndex, ItemStatsRow, StoredItem
from serving.core.parameters import Parameters, ParameterVersion
from tests.unit import fakes
from tests.unit.fakes import T0, event

# Deterministic lists: no exploration, no diversity re-ranking.
PLAIN = Parameters(
    exploration="off", diversity_lambda=0.0, popularity_weight=0.0, freshness_weight=0.0
)


def recommender(
    index: ItemIndex | None = None,
    encoders: fakes.FakeEncoders | None = None,
    params: Parameters = PLAIN,
    feedback: fakes.FakeFeedback | None = None,
) -> tuple[RecommenderService, fakes.FakeFeedback, fakes.FakeImpressions]:
    feedback = feedback or fakes.FakeFeedback()
    impressions = fakes.FakeImpressions()
    source = fakes.FakeParameterSource(ParameterVersion(7, params, "test", "plain", T0))
    service = RecommenderService(
        index or fakes.built_index(),
        encoders or fakes.FakeEncoders(),
        source,
        feedback,
        impressions,
        rng=np.random.default_rng(0),
    )
    return service, feedback, impressions


async def test_recommend_ranks_by_the_user_vector_and_logs_the_list() -> None:
    service, feedback, impressions = recommender()
    feedback.events["e1"] = event("e1", "e")  # history, so the model is asked
    result = await service.recommend(RecommendQuery("u1", "", k=3))
    # vector (1,0,0,0) prefers a (4) then b (3); seen "e" is excluded.
    assert result.item_ids[:2] == ["a", "b"]
    assert "e" not in result.item_ids
    assert not result.degraded and result.model_version == "1"
    assert result.parameter_version == 7 and result.variant == "control"
    assert [r.recommendation for r in impressions.recorded] == [result]
    assert service.index.impressions[service.index.position("a")] == 1.0


async def test_recommend_without_history_or_model_falls_back_to_the_prior() -> None:
    encoders = fakes.FakeEncoders()
    service, _, _ = recommender(encoders=encoders)
    cold = await service.recommend(RecommendQuery("new", "", k=2))
    assert not cold.degraded and encoders.user_calls == []  # no history: nothing to encode
    unplaced, feedback, _ = recommender(index=fakes.built_index(with_space=False))
    feedback.events["e1"] = event("e1", "a")
    result = await unplaced.recommend(RecommendQuery("u1", "", k=2))
    assert result.degraded and result.model_version == ""
    assert len(result.items) == 2


async def test_recommend_degrades_when_the_model_or_the_database_is_down() -> None:
    encoders = fakes.FakeEncoders()
    encoders.down = True
    service, feedback, _ = recommender(encoders=encoders)
    feedback.events["e1"] = event("e1", "a")
    assert (await service.recommend(RecommendQuery("u1", "", k=2))).degraded
    feedback.down = True
    encoders.down = False
    result = await service.recommend(RecommendQuery("u1", "", k=2))
    assert result.degraded and "a" in result.item_ids  # no history: "a" is not known as seen


async def test_recommend_falls_back_when_triton_no_longer_serves_the_index_version() -> None:
    service, feedback, _ = recommender(encoders=fakes.FakeEncoders(version=2))
    feedback.events["e1"] = event("e1", "a")
    result = await service.recommend(RecommendQuery("u1", "", k=2))
    assert result.degraded and result.model_version == ""


async def test_recommend_asks_the_index_version_while_the_index_places_a_new_one() -> None:
    # Triton serves v2 and keeps v1; the index is still in v1's space.
    encoders = fakes.FakeEncoders(version=2)
    encoders.older = {1}
    service, feedback, _ = recommender(encoders=encoders)
    feedback.events["e1"] = event("e1", "e")
    during = await service.recommend(RecommendQuery("u1", "", k=2))
    assert not during.degraded and during.model_version == "1"
    service.index.set_space(fakes.item_space(2))
    after = await service.recommend(RecommendQuery("u1", "", k=2))
    assert not after.degraded and after.model_version == "2"


async def test_recommend_encodes_again_when_the_index_switches_during_the_call() -> None:
    encoders = fakes.FakeEncoders(version=2)
    encoders.older = {1}
    service, feedback, _ = recommender(encoders=encoders)
    feedback.events["e1"] = event("e1", "e")

    def switch_once() -> None:
        service.index.set_space(fakes.item_space(2))
        encoders.while_encoding = None

    encoders.while_encoding = switch_once
    switched = await service.recommend(RecommendQuery("u1", "", k=2))
    assert not switched.degraded and switched.model_version == "2"
    assert len(encoders.user_calls) == 2


async def test_recommend_applies_request_and_variant_rules() -> None:
    service, feedback, _ = recommender()
    feedback.events["d1"] = event("d1", "b", EventType.DISLIKE)
    result = await service.recommend(
        RecommendQuery(
            "u1",
            "",
            k=6,
            exclude_item_ids=frozenset({"c"}),
            context={"exclude_categories": "music"},
        )
    )
    assert set(result.item_ids) == {"a", "d"}  # b disliked (and seen), c excluded, e/f music
    with pytest.raises(InvalidArgument, match=r"^k:"):
        await service.recommend(RecommendQuery("u1", "", k=0))
    service._parameters.experiment = Experiment(  # type: ignore[misc]
        "sport-only", (Variant("sport", 1.0, {"include_categories": ["sport"]}),)
    )
    result = await service.recommend(RecommendQuery("u2", "", k=6))
    assert result.variant == "sport" and set(result.item_ids) == {"c", "d"}


async def test_replay_logs_nothing_and_needs_the_model() -> None:
    service, _, impressions = recommender()
    ranking = await service.replay(UserState(("a",), (EventType.CLICK,)), PLAIN, 2)
    ids = [i.item_id for i in ranking.items]
    assert len(ids) == 2 and ids[0] == "b" and "a" not in ids  # "a" is seen
    assert impressions.recorded == [] and service.index.impressions.sum() == 0
    unplaced, _, _ = recommender(index=fakes.built_index(with_space=False))
    with pytest.raises(Unavailable):
        await unplaced.replay(UserState(("a",), (EventType.CLICK,)), PLAIN, 2)


def feedback_service(
    experiment: Experiment | None = None,
) -> tuple[FeedbackService, fakes.FakeFeedback, fakes.FakeImpressions]:
    log: list[str] = []
    store = fakes.FakeFeedback(calls=log)
    impressions = fakes.FakeImpressions(log=log)
    source = fakes.FakeParameterSource(experiment=experiment)
    traces = fakes.FakeTraces(calls=log)
    return FeedbackService(store, impressions, source, traces), store, impressions


async def test_log_feedback_validates_records_once_and_tags_the_variant() -> None:
    experiment = Experiment("x", (Variant("only", 1.0),))
    service, store, _ = feedback_service(experiment)
    result = await service.log_feedback([event("e1", "a"), event("e2", "b")])
    assert (result.accepted, result.duplicates) == (2, 0)
    again = await service.log_feedback([event("e1", "a")])
    assert (again.accepted, again.duplicates) == (0, 1)
    assert store.variants == {"e1": "only", "e2": "only"}
    assert store.half_lives == [Parameters().popularity_half_life_hours] * 2
    with pytest.raises(InvalidArgument, match=r"^events\[0\]\.item_id"):
        await service.log_feedback([event("e3", "")])
    with pytest.raises(InvalidArgument, match=r"^events:"):
        await service.log_feedback([])
    plain, plain_store, _ = feedback_service()
    await plain.log_feedback([event("e9", "a")])
    assert plain_store.variants == {"e9": "control"}


async def test_forget_user_writes_pending_lists_then_deletes_traces_then_rows() -> None:
    service, store, _ = feedback_service()
    await service.log_feedback([event("e1", "a"), event("e2", "a", user_id="other")])
    assert await service.forget_user("u1") == 1
    assert store.calls == ["flush", "traces u1", "forget u1"]
    assert [e.user_id for e in store.events.values()] == ["other"]
    with pytest.raises(InvalidArgument, match=r"^user_id:"):
        await service.forget_user("")


async def test_merge_session_moves_the_anonymous_events() -> None:
    service, store, _ = feedback_service()
    await service.log_feedback([event("e1", "a", user_id="", session_id="s1")])
    assert await service.merge_session("s1", "u1") == 1
    assert store.events["e1"].user_id == "u1"
    with pytest.raises(InvalidArgument, match=r"^session_id:"):
        await service.merge_session("", "u1")


async def test_upsert_items_encodes_stores_and_indexes_at_once() -> None:
    catalogue, encoders, index = fakes.FakeCatalogue(), fakes.FakeEncoders(), ItemIndex()
    service = ItemService(catalogue, encoders, index)
    items = [Item("a", "title a", categories=("news",)), Item("c", "title c")]
    assert await service.upsert_items(items) == 2
    assert encoders.texts == [i.text() for i in items]
    assert set(catalogue.items) == {"a", "c"}
    assert index.arrays.ids == ("a", "c")
    assert np.allclose(index.arrays.content_of([0])[0], fakes.content("a"), atol=2e-3)
    with pytest.raises(InvalidArgument, match=r"^items\[1\]\.item_id"):
        await service.upsert_items([Item("x", "t"), Item("x", "t")])
    encoders.down = True
    with pytest.raises(Unavailable):
        await service.upsert_items([Item("z", "title z")])
    assert "z" not in catalogue.items and index.position("z") is None


def admin() -> tuple[AdminService, fakes.FakeParameterStore, fakes.FakeExperimentStore]:
    parameters, experiments = fakes.FakeParameterStore(), fakes.FakeExperimentStore()
    service, _, _ = recommender()
    preview = PreviewService(
        fakes.FakeLoggedLists(), fakes.FakeFeedback(), service, fakes.FakeParameterSource()
    )
    return AdminService(parameters, experiments, preview), parameters, experiments


async def test_parameter_updates_merge_the_mask_and_are_audited() -> None:
    service, store, _ = admin()
    changed = await service.update(
        {"diversity_lambda": 0.7, "popularity_weight": 9.0}, ["diversity_lambda"], "ops", "why"
    )
    assert changed.version == 2 and changed.parameters.diversity_lambda == 0.7
    assert changed.parameters.popularity_weight == Parameters().popularity_weight
    with pytest.raises(InvalidArgument, match=r"^reason:"):
        await service.update({"diversity_lambda": 1.0}, [], "ops", " ")
    with pytest.raises(InvalidArgument, match=r"^update_mask:"):
        await service.update({}, ["nope"], "ops", "why")
    with pytest.raises(InvalidArgument, match=r"^parameters\.diversity_lambda"):
        await service.update({"diversity_lambda": -1.0}, ["diversity_lambda"], "ops", "why")
    back = await service.rollback(1, "ops", "undo")
    assert back.version == 3 and back.parameters == Parameters()
    with pytest.raises(NotFound):
        await service.rollback(99, "ops", "undo")
    assert [v.version for v in await service.history(2)] == [3, 2]
    with pytest.raises(InvalidArgument, match=r"^limit:"):
        await service.history(-1)
    assert len(store.versions) == 3  # refused changes wrote nothing


async def test_experiments_are_validated_allocated_and_stopped() -> None:
    service, _, store = admin()
    variants = [Variant("a", 0.5), Variant("b", 0.5, {"diversity_lambda": 1.0})]
    record = await service.create_experiment("x", variants, "ops", "why")
    assert record.status == "running" and record.experiment.variants[1].share == 0.5
    with pytest.raises(InvalidArgument, match=r"^shares:"):
        await service.allocate("x", {"zz": 1.0}, "ops", "why")
    with pytest.raises(InvalidArgument, match=r"^variants:"):
        await service.allocate("x", {"a": 0.9}, "ops", "why")
    moved = await service.allocate("x", {"a": 0.8, "b": 0.2}, "ops", "why")
    assert [v.share for v in moved.experiment.variants] == [0.8, 0.2]
    assert (await service.stop_experiment("x", "ops", "done")).status == "stopped"
    with pytest.raises(InvalidArgument, match=r"^variants\[0\]\.share"):
        await service.create_experiment("y", [Variant("a", 2.0)], "ops", "why")
    assert [r.experiment.name for r in await service.experiments()] == ["x"]
    assert store.records["x"].status == "stopped"


async def test_preview_replays_the_logs_and_the_users() -> None:
    service, feedback, _ = recommender()
    feedback.events["e1"] = event("e1", "c")
    # Logged: "a" shown with propensity 0.5 and clicked, "f" shown and not clicked.
    logged = LoggedList(
        "r1", UserState(("c",), (EventType.CLICK,)), ("a", "f"), (0.5, 0.5), frozenset({"a"})
    )
    lists = fakes.FakeLoggedLists([logged], ["u1"])
    source = fakes.FakeParameterSource(ParameterVersion(3, PLAIN, "t", "t", T0))
    preview = PreviewService(lists, feedback, service, source)
    result = await preview.preview(
        {"exclude_categories": ["news"]}, ["exclude_categories"], hours=2, sample=10
    )
    assert result.estimate.recommendations == 1 and result.estimate.impressions == 2
    assert result.estimate.logged_ctr == 0.5
    assert result.estimate.ips_ctr == 0.0  # the candidate never shows the clicked "a"
    (user,) = result.users
    assert user.user_id == "u1" and "a" in user.before and "a" not in user.after
    _, limit, history = lists.asked[0]
    assert limit == 10 and history == PLAIN.history_length
    with pytest.raises(InvalidArgument, match=r"^hours:"):
        await preview.preview({}, [], hours=-1)


async def test_index_sync_applies_changes_once_and_follows_the_model() -> None:
    catalogue, spaces = fakes.FakeCatalogue(), fakes.FakeItemSpaces()
    models, index = fakes.FakeServedModels(version=None), ItemIndex()
    prepared: list[IndexArrays] = []  # what a retriever is asked to build for, in order
    sync = IndexSync(catalogue, spaces, models, index, interval_s=60, prepare=prepared.append)
    a = StoredItem(Item("a", "a"), fakes.content("a"), catalogue.now, False)
    catalogue.items["a"] = a
    catalogue.stats["a"] = ItemStatsRow("a", 5.0, catalogue.now, catalogue.now, 10, 2)
    await sync.refresh()
    assert index.arrays.ids == ("a",) and index.clicks.tolist() == [2.0]
    assert index.space is None
    # A row re-read inside the overlap is not applied again; a newer one is.
    catalogue.tick()
    catalogue.items["a"] = StoredItem(Item("a", "a"), a.embedding, a.updated_at, True)
    catalogue.items["b"] = StoredItem(Item("b", "b"), fakes.content("b"), catalogue.now, False)
    await sync.refresh()
    assert index.arrays.ids == ("a", "b") and index.arrays.live.tolist() == [True, True]
    # The served version moves: the index follows once its item space is stored.
    models.version = 1
    await sync.refresh()
    assert index.space is None
    spaces.spaces[1] = fakes.item_space(1)
    await sync.refresh()
    assert index.space is spaces.spaces[1] and index.arrays.vectors.shape == (2, fakes.DIM)
    # A retriever is asked to prepare after each refresh that changed the arrays only.
    assert len(prepared) == 3 and prepared[-1] is index.arrays
    assert prepared[-1].space is spaces.spaces[1] and prepared[1].space is None
    await sync.refresh()
    assert len(prepared) == 3


async def test_index_sync_loads_the_catalogue_a_page_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The start-up load reads the whole catalogue in pages along the item ids (never a
    million rows at once), into room reserved for all of it (no column is copied as it
    grows); later refreshes read only what changed."""
    monkeypatch.setattr(sync_module, "LOAD_PAGE", 2)
    catalogue = fakes.FakeCatalogue()
    for item_id in "edcba":
        catalogue.items[item_id] = StoredItem(
            Item(item_id, item_id), fakes.content(item_id), catalogue.now, item_id == "c"
        )
    index = ItemIndex()
    sync = IndexSync(catalogue, fakes.FakeItemSpaces(), fakes.FakeServedModels(None), index, 60)
    await sync.refresh()
    assert catalogue.reads == 3  # 2 + 2 + 1 items
    assert index.arrays.ids == tuple("abcde")
    assert index.arrays.live.tolist() == [True, True, False, True, True]
    assert len(index.arrays.content.base) == 5  # one buffer, the size of the catalogue
    catalogue.tick()
    catalogue.items["f"] = StoredItem(Item("f", "f"), fakes.content("f"), catalogue.now, False)
    await sync.refresh()
    assert catalogue.reads == 4 and index.arrays.ids == tuple("abcdef")


async def test_index_sync_remembers_only_the_rows_it_will_read_again() -> None:
    """What was applied is kept for the rows inside the overlap only (the next read returns
    them again), not for every item of the catalogue; the encoder counts follow each
    change without a recount."""
    catalogue = fakes.FakeCatalogue()
    for item_id in "abc":
        catalogue.items[item_id] = StoredItem(
            Item(item_id, item_id), fakes.content(item_id), catalogue.now, False
        )
    index = ItemIndex()
    sync = IndexSync(catalogue, fakes.FakeItemSpaces(), fakes.FakeServedModels(None), index, 60)
    await sync.refresh()
    assert set(sync._item_versions) == set("abc")  # written at "now": read again next time
    catalogue.tick(sync_module.OVERLAP.total_seconds() + 1)
    catalogue.items["d"] = StoredItem(Item("d", "d"), fakes.content("d"), catalogue.now, False)
    await sync.refresh()
    assert set(sync._item_versions) == {"d"} and index.arrays.ids == tuple("abcd")
    catalogue.tick()
    catalogue.items["a"] = StoredItem(Item("a", "a"), fakes.content("a"), catalogue.now, True)
    await sync.refresh()
    assert index.arrays.live.tolist() == [False, True, True, True]
    assert sum(sync._encoder_counts.values()) == 3 == len(sync._encoders)


async def test_parameter_cache_reloads_parameters_and_experiment() -> None:
    store, experiments = fakes.FakeParameterStore(), fakes.FakeExperimentStore()
    cache = ParameterCache(store, experiments)
    await cache.reload()
    assert cache.current.version == 1 and cache.experiment is None
    await store.change(lambda p: p.merged({"diversity_lambda": 2.0}), "ops", "why")
    await experiments.create(Experiment("x", (Variant("a", 1.0),)), "ops", "why")
    await cache.reload()
    assert cache.current.parameters.diversity_lambda == 2.0
    assert cache.experiment is not None and cache.experiment.name == "x"
    assert T0 + timedelta(0) == cache.current.created_at
