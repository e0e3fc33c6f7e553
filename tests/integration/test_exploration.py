"""Exploration gives new items exposure only when it is on; propensities are logged."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from serving.client import Event, RecsysClient
from serving.core.domain import Item
from tests.integration.platform import Running, set_parameters

pytestmark = pytest.mark.integration
REQUESTS = 400


def exposures(client: RecsysClient, item_id: str, users: list[str]) -> int:
    return sum(item_id in client.recommend(user, k=10).item_ids for user in users)


def test_a_new_item_gets_exposure_with_exploration_and_none_without(
    platform: Running, client: RecsysClient, restore_parameters
):
    with psycopg.connect(platform.url) as conn:
        some = [
            r[0]
            for r in conn.execute(
                "SELECT item_id FROM items WHERE deleted_at IS NULL ORDER BY item_id LIMIT 40"
            )
        ]
    users = []
    for n in range(REQUESTS):
        user = f"user-{uuid.uuid4()}"
        client.log_feedback([Event(item_id=some[n % len(some)], type="click", user_id=user)])
        users.append(user)
    item = Item(
        f"new-{uuid.uuid4()}",
        "Industrial hydraulic pump gasket replacement kit",
        "Nitrile O-rings and seals for 3000 psi gear pumps.",
        ("spare parts",),
        published_at=datetime.now(UTC),
    )
    client.upsert_items([item])
    set_parameters(client, exploration="off")
    off = exposures(client, item.item_id, users)
    set_parameters(client, exploration="thompson", exploration_weight=3.0)
    thompson = exposures(client, item.item_id, users)
    set_parameters(client, exploration="epsilon", exploration_weight=1.0)
    epsilon = exposures(client, item.item_id, users)
    assert off == 0
    assert thompson > 0 and epsilon > 0


def test_propensities_are_returned_and_logged(platform: Running, client, restore_parameters):
    set_parameters(client, exploration="off")
    assert all(item.propensity == 1.0 for item in client.recommend("p-user", k=5).items)
    set_parameters(client, exploration="thompson", exploration_weight=1.0)
    rec = client.recommend("p-user", k=5)
    assert all(0 < item.propensity <= 1 for item in rec.items)
    assert any(item.propensity < 1 for item in rec.items)
    deadline = time.monotonic() + 30  # generous: impressions are written in batches
    logged: list[tuple[float]] = []
    while len(logged) < 5 and time.monotonic() < deadline:
        with psycopg.connect(platform.url) as conn:
            logged = conn.execute(
                "SELECT propensity FROM impressions WHERE recommendation_id = %s ORDER BY position",
                (rec.recommendation_id,),
            ).fetchall()
        time.sleep(0.1)
    assert [p for (p,) in logged] == pytest.approx([i.propensity for i in rec.items])
