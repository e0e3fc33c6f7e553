"""A/B experiments over a real channel: assignment, per-variant parameters, events tagged
with their variant, re-allocation and stop."""

from __future__ import annotations

import time
import uuid

import grpc
import psycopg
import pytest

from serving.client import Event, RecsysClient
from serving.core.experiments import Experiment, Variant
from tests.integration.platform import Running

pytestmark = pytest.mark.integration


def in_force(client: RecsysClient, check, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "experiment change not in force"
        time.sleep(0.02)


def test_an_experiment_from_start_to_stop(platform: Running, client: RecsysClient):
    name = f"exp-{uuid.uuid4().hex[:8]}"
    # "popular" ranks without relevance: its own parameters are in force exactly when
    # every relevance component it returns is zero (control's never is: a logistic).
    overrides = {"popularity_weight": 2.0, "relevance_weight": 0.0}
    variants = [Variant("control", 0.5), Variant("popular", 0.5, overrides)]
    created = client.create_experiment(name, variants, changed_by="ana", reason="test")
    assert created["status"] == "running" and created["variants"] == variants
    experiment = Experiment(name, tuple(variants))
    users = [f"user-{uuid.uuid4()}" for _ in range(40)]
    # A user outside "control": before the experiment is in force everyone is "control".
    probe = next(u for u in users if experiment.assign(u).name == "popular")
    in_force(client, lambda: client.recommend(probe, k=1).variant == "popular")
    # A click each, so the user encoder (hence relevance) takes part in their rankings.
    seed_item = client.recommend("experiment-seed", k=1).items[0].item_id
    client.log_feedback([Event(seed_item, "click", user_id=user) for user in users])

    checked = {"control": 0, "popular": 0}
    for user in users:
        rec = client.recommend(user, k=3)
        assert rec.variant == experiment.assign(user).name
        if rec.degraded:  # a fallback (a loaded machine) ranks without the model at all
            continue
        checked[rec.variant] += 1
        relevance = [item.components["relevance"] for item in rec.items]
        if rec.variant == "popular":
            assert relevance == [0.0] * len(rec.items), user
        else:
            assert all(r > 0.0 for r in relevance), user
    assert min(checked.values()) > 0, checked
    user = users[0]
    rec = client.recommend(user, k=1)
    client.log_feedback(
        [
            Event(
                rec.items[0].item_id, "click", user_id=user, recommendation_id=rec.recommendation_id
            )
        ]
    )
    with psycopg.connect(platform.url) as conn:
        stored = conn.execute("SELECT variant FROM events WHERE user_id = %s", (user,)).fetchall()
    assert stored == [(experiment.assign(user).name,)] * 2  # the seed click, this click

    with pytest.raises(grpc.RpcError) as error:  # one experiment at a time
        client.create_experiment(f"{name}-2", variants, changed_by="ana", reason="test")
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as error:
        client.allocate_experiment(name, {"control": 0.9}, changed_by="ana", reason="x")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    allocated = client.allocate_experiment(
        name, {"control": 0.0, "popular": 1.0}, changed_by="ana", reason="ship it"
    )
    assert [v.share for v in allocated["variants"]] == [0.0, 1.0]
    in_force(client, lambda: client.recommend(users[1], k=1).variant == "popular")

    stopped = client.stop_experiment(name, changed_by="ana", reason="done")
    assert stopped["status"] == "stopped"
    in_force(client, lambda: client.recommend(users[1], k=1).variant == "control")
    assert name in [e["name"] for e in client.list_experiments()]


def test_bad_experiments_are_rejected(client: RecsysClient):
    with pytest.raises(grpc.RpcError) as error:
        client.create_experiment(
            "bad", [Variant("a", 0.5), Variant("b", 0.4)], changed_by="ana", reason="test"
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("variants")
    with pytest.raises(grpc.RpcError) as error:
        client.stop_experiment("never-started", changed_by="ana", reason="test")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
