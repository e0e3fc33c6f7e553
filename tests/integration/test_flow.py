"""The spine end to end over a real channel: real tritonserver, real PostgreSQL."""

from __future__ import annotations

import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from serving.client import Event, RecsysClient
from serving.core.domain import Item
from tests.integration.platform import Running, query, wait_for_version

pytestmark = pytest.mark.integration


def embeddings(platform: Running) -> dict[str, np.ndarray]:
    rows = query(platform, "SELECT item_id, embedding FROM items")
    return {item_id: np.asarray(e, dtype=np.float32) for item_id, e in rows}


def categories(platform: Running) -> dict[str, str]:
    return {i: c[0] for i, c in query(platform, "SELECT item_id, categories FROM items")}


def test_health_is_serving_and_reflection_lists_the_services(platform):
    with grpc.insecure_channel(platform.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        [answer] = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
    names = {s.name for s in answer.list_services_response.service}
    assert {"recsys.v1.Recommender", "recsys.v1.Admin", "grpc.health.v1.Health"} <= names


def test_feedback_steers_the_next_recommendation(platform, client: RecsysClient):
    user = f"user-{uuid.uuid4()}"
    category = categories(platform)
    content = embeddings(platform)
    by_category: dict[str, list[str]] = {}
    for item_id, cat in sorted(category.items()):
        by_category.setdefault(cat, []).append(item_id)
    first_cat, second_cat = sorted(by_category)[:2]
    history = by_category[first_cat][:5]
    client.log_feedback([Event(item_id=i, type="click", user_id=user) for i in history])
    before = client.recommend(user, k=10)
    assert not before.degraded and before.model_version == "1"
    assert set(before.item_ids).isdisjoint(history)  # seen items are filtered
    for item in before.items:  # explanations name items of this user's history only
        assert set(item.because_item_ids) <= set(history), item
    assert any(item.because_item_ids for item in before.items)
    for item in before.items:
        assert set(item.components) >= {"relevance", "popularity", "freshness"}

    disliked = before.item_ids[0]
    clicked = by_category[second_cat][:3]
    events = [
        Event(
            item_id=disliked,
            type="dislike",
            user_id=user,
            recommendation_id=before.recommendation_id,
        )
    ]
    events += [Event(item_id=i, type="click", user_id=user) for i in clicked]
    assert client.log_feedback(events).accepted == 4

    after = client.recommend(user, k=10)
    assert disliked not in after.item_ids
    target = np.mean([content[i] for i in clicked], axis=0)

    def closeness(ids: list[str]) -> float:
        return float(np.mean([content[i] @ target for i in ids]))

    assert closeness(after.item_ids) > closeness(before.item_ids)
    share = sum(category[i] == second_cat for i in after.item_ids)
    assert share > sum(category[i] == second_cat for i in before.item_ids)


def test_because_names_the_planted_history_item_first(platform, client: RecsysClient):
    # Three clicks in one category, then one planted item of another; asked for items of
    # the planted item's category only, each answer's strongest reason is the planted
    # item (the closest in content among the history), and no reason is outside it.
    user = f"user-{uuid.uuid4()}"
    labels = {i: c for i, c in query(platform, "SELECT item_id, categories FROM items")}
    single = sorted((c[0], i) for i, c in labels.items() if len(c) == 1)
    # Two categories no item carries both of (a second label can come from a related one).
    first_cat, second_cat = next(
        (a, b)
        for a in sorted({c for c, _ in single})
        for b in sorted({c for c, _ in single})
        if a != b and not any({a, b} <= set(c) for c in labels.values())
    )
    older = [i for c, i in single if c == first_cat][:3]
    planted = next(i for c, i in single if c == second_cat)
    history = [*older, planted]
    client.log_feedback([Event(item_id=i, type="click", user_id=user) for i in history])
    rec = client.recommend(user, k=10, context={"include_categories": second_cat})
    assert rec.items and not rec.degraded
    for item in rec.items:
        assert second_cat in labels[item.item_id]
        assert item.because_item_ids, item
        assert set(item.because_item_ids) <= set(history), item
        assert item.because_item_ids[0] == planted, item


def test_a_disliked_item_never_comes_back(platform, client):
    user = f"user-{uuid.uuid4()}"
    first = client.recommend(user, k=5).item_ids
    client.log_feedback([Event(item_id=first[0], type="dislike", user_id=user)])
    for _ in range(3):
        assert first[0] not in client.recommend(user, k=50).item_ids


def test_a_retried_feedback_call_stores_each_event_once(platform, client):
    user = f"user-{uuid.uuid4()}"
    items = client.recommend(user, k=3).item_ids
    events = [Event(item_id=i, type="click", user_id=user) for i in items]
    assert (client.log_feedback(events).accepted, client.log_feedback(events).duplicates) == (3, 3)
    again = client.log_feedback(events)
    assert (again.accepted, again.duplicates) == (0, 3)
    rows = query(
        platform, "SELECT event_id, count(*) FROM events WHERE user_id = %s GROUP BY event_id", user
    )
    assert sorted(rows) == sorted((e.event_id, 1) for e in events)
    state = query(platform, "SELECT item_ids FROM user_state WHERE subject = %s", user)
    assert state == [(items,)]
    # They landed in this month's partition of the time-partitioned events table.
    partitions = query(
        platform, "SELECT DISTINCT tableoid::regclass::text FROM events WHERE user_id = %s", user
    )
    assert partitions == [(f"events_{datetime.now(UTC):%Y_%m}",)]


def test_anonymous_sessions_get_their_own_state(platform, client):
    session = f"session-{uuid.uuid4()}"
    shown = client.recommend("", k=3, session_id=session).item_ids
    client.log_feedback([Event(item_id=shown[0], type="dislike", session_id=session)])
    assert shown[0] not in client.recommend("", k=50, session_id=session).item_ids


def test_a_new_item_is_recommendable_on_the_next_call(platform, client):
    item = Item(
        f"new-{uuid.uuid4()}",
        "A brand new smoky jazz record",
        "Late-night saxophone standards, recorded live.",
        ("jazz",),
        published_at=datetime.now(UTC),
    )
    assert client.upsert_items([item]) == 1
    catalogue_size = query(platform, "SELECT count(*) FROM items")[0][0]
    rec = client.recommend(f"user-{uuid.uuid4()}", k=min(catalogue_size, 1000))
    assert item.item_id in rec.item_ids
    stored = query(
        platform, "SELECT cardinality(embedding) FROM items WHERE item_id = %s", item.item_id
    )
    assert stored == [(384,)]


def test_impressions_are_logged_off_the_hot_path(platform, client):
    rec = client.recommend(f"user-{uuid.uuid4()}", k=4)
    deadline = time.monotonic() + 30  # generous: impressions are written in batches
    rows: list[tuple] = []
    while time.monotonic() < deadline and len(rows) < 4:
        rows = query(
            platform,
            "SELECT item_id FROM impressions WHERE recommendation_id = %s ORDER BY position",
            rec.recommendation_id,
        )
        time.sleep(0.1)
    assert [r[0] for r in rows] == rec.item_ids


def test_forget_user_deletes_their_rows(platform, client):
    user = f"user-{uuid.uuid4()}"
    items = client.recommend(user, k=2).item_ids
    client.log_feedback([Event(item_id=i, type="like", user_id=user) for i in items])
    assert client.forget_user(user) == 2
    for table, column in (("events", "user_id"), ("users", "user_id"), ("user_state", "subject")):
        assert query(platform, f"SELECT count(*) FROM {table} WHERE {column} = %s", user) == [(0,)]


def test_parameters_are_versioned_and_take_effect(platform, client, restore_parameters):
    before = client.get_parameters()
    updated = client.update_parameters({"popularity_weight": 0.4}, changed_by="ops", reason="test")
    assert updated["version"] == before["version"] + 1
    assert updated["parameters"]["popularity_weight"] == pytest.approx(0.4)
    assert updated["parameters"]["relevance_weight"] == before["parameters"]["relevance_weight"]
    history = client.parameter_history(limit=2)
    assert [h["version"] for h in history] == [updated["version"], before["version"]]
    wait_for_version(client, updated["version"])


def test_metrics_are_exported(platform, client):
    client.recommend(f"user-{uuid.uuid4()}", k=1)
    url = f"http://127.0.0.1:{platform.settings.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    assert 'recsys_grpc_requests_total{code="OK",method="Recommend"}' in text
    assert "recsys_grpc_request_seconds_bucket" in text
    assert 'recsys_triton_call_seconds_count{model="user_encoder"}' in text


def test_feedback_timestamps_may_not_be_in_the_future(platform, client):
    event = Event(
        item_id="x", type="click", user_id="u", timestamp=datetime.now(UTC) + timedelta(days=1)
    )
    with pytest.raises(grpc.RpcError) as error:
        client.log_feedback([event])
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_category_rules_per_request(platform, client):
    tags = dict(query(platform, "SELECT item_id, categories FROM items"))
    kept = sorted({c for cats in tags.values() for c in cats})[:2]
    rec = client.recommend(
        f"user-{uuid.uuid4()}", k=20, context={"include_categories": ",".join(kept)}
    )
    assert len(rec.items) == 20 and all(set(tags[i]) & set(kept) for i in rec.item_ids)
    rec = client.recommend(f"user-{uuid.uuid4()}", k=50, context={"exclude_categories": kept[0]})
    assert not any(kept[0] in tags[i] for i in rec.item_ids)
    with pytest.raises(grpc.RpcError) as error:
        client.recommend("u", k=5, context={"include_categories": " , "})
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("context.include_categories")


def test_a_session_merges_into_the_user_who_signs_in(platform, client):
    session, user = f"session-{uuid.uuid4()}", f"user-{uuid.uuid4()}"
    shown = client.recommend("", k=3, session_id=session).item_ids
    client.log_feedback(
        [
            Event(item_id=shown[0], type="dislike", session_id=session),
            Event(item_id=shown[1], type="click", session_id=session),
        ]
    )
    assert client.merge_session(session, user) == 2
    state = query(platform, "SELECT item_ids, disliked FROM user_state WHERE subject = %s", user)
    assert state == [([shown[0], shown[1]], [shown[0]])]
    assert query(
        platform, "SELECT count(*) FROM user_state WHERE subject = %s", f"session:{session}"
    ) == [(0,)]
    assert shown[0] not in client.recommend(user, k=50).item_ids
    assert client.merge_session(session, user) == 0  # nothing left to merge


def test_items_outside_their_availability_window_are_not_recommended(platform, client):
    now = datetime.now(UTC)

    def item(name: str, **window) -> Item:
        return Item(
            f"{name}-{uuid.uuid4()}",
            f"Limited edition {name} vinyl box set",
            "Jazz.",
            ("jazz",),
            published_at=now,
            **window,
        )

    expired = item("expired", available_until=now - timedelta(hours=1))
    upcoming = item("upcoming", available_from=now + timedelta(days=1))
    current = item(
        "current", available_from=now - timedelta(hours=1), available_until=now + timedelta(days=1)
    )
    client.upsert_items([expired, upcoming, current])
    catalogue_size = query(platform, "SELECT count(*) FROM items")[0][0]
    shown = client.recommend(f"user-{uuid.uuid4()}", k=min(catalogue_size, 1000)).item_ids
    assert current.item_id in shown
    assert expired.item_id not in shown and upcoming.item_id not in shown
