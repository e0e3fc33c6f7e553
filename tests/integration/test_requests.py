"""What a request (and the catalogue behind it) controls, over a real channel: excluded
ids, items updated in place, seen items kept when asked, and the rollups the server
folds in by itself."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from serving.client import Event, RecsysClient
from serving.core.domain import Item
from tests.integration.platform import Running, set_parameters

pytestmark = pytest.mark.integration

EVERYTHING = 1000
"""Recommend's largest k: more than the catalogue, so an answer lists every allowed item."""


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.1)


def test_excluded_ids_are_left_out(client: RecsysClient) -> None:
    user = f"user-{uuid.uuid4()}"
    first = client.recommend(user, k=10).item_ids
    excluded = first[:5]
    again = client.recommend(user, k=10, exclude=[*excluded, "no-such-item"])
    assert len(again.items) == 10
    assert set(again.item_ids).isdisjoint(excluded)
    everything = client.recommend(user, k=EVERYTHING, exclude=excluded).item_ids
    assert set(everything).isdisjoint(excluded) and set(first[5:]) <= set(everything)


def stored_item(platform: Running, item_id: str) -> tuple[Item, list[float]]:
    with psycopg.connect(platform.url) as conn:
        row = conn.execute(
            "SELECT title, description, categories, tags, published_at, attributes,"
            " available_from, available_until, embedding FROM items WHERE item_id = %s",
            (item_id,),
        ).fetchone()
    assert row is not None
    title, description, categories, tags, published, attributes, since, until, emb = row
    item = Item(
        item_id, title, description, tuple(categories), tuple(tags), published,
        {k: str(v) for k, v in attributes.items()}, since, until,
    )  # fmt: skip
    return item, emb


def test_upserting_an_existing_item_updates_it_for_the_next_recommend(
    platform: Running, client: RecsysClient
) -> None:
    user = f"user-{uuid.uuid4()}"
    item_id = client.recommend(user, k=10).item_ids[0]
    original, original_embedding = stored_item(platform, item_id)
    category = f"updated-{uuid.uuid4().hex[:8]}"
    try:
        gone = Item(
            item_id,
            "A completely different title about deep sea fishing",
            "Rewritten.",
            (category,),
            available_until=datetime.now(UTC) - timedelta(hours=1),
        )
        assert client.upsert_items([gone]) == 1
        stored, embedding = stored_item(platform, item_id)
        assert (stored.title, stored.categories) == (gone.title, (category,))
        assert stored.available_until == gone.available_until
        assert embedding != original_embedding  # the new text was embedded again
        wait_for(
            lambda: item_id not in client.recommend(user, k=EVERYTHING).item_ids,
            30,
            "the item out of its availability window still recommended",
        )

        back = Item(item_id, gone.title, gone.description, (category,))
        assert client.upsert_items([back]) == 1

        def in_its_new_category() -> bool:
            rec = client.recommend(user, k=10, context={"include_categories": category})
            return rec.item_ids == [item_id]

        wait_for(in_its_new_category, 30, "the item available again in its new category")
    finally:
        client.upsert_items([original])
    assert stored_item(platform, item_id)[0] == original


@pytest.mark.usefixtures("restore_parameters")
def test_seen_items_come_back_when_exclude_seen_is_off(client: RecsysClient) -> None:
    user = f"user-{uuid.uuid4()}"
    seen = client.recommend(user, k=5).item_ids[:2]
    client.log_feedback([Event(item, "click", user_id=user) for item in seen])
    assert set(seen).isdisjoint(client.recommend(user, k=EVERYTHING).item_ids)
    set_parameters(client, exclude_seen=False)
    assert set(seen) <= set(client.recommend(user, k=EVERYTHING).item_ids)
    set_parameters(client, exclude_seen=True)
    assert set(seen).isdisjoint(client.recommend(user, k=EVERYTHING).item_ids)


def test_the_server_folds_traffic_into_the_rollups_by_itself(
    platform: Running, client: RecsysClient
) -> None:
    # Nothing here calls the rollup code: the server's own refresher (every
    # rollup_refresh_s, keeping 10 s behind now) must bring the new user in.
    user = f"rollup-{uuid.uuid4()}"
    client.recommend(user, k=3)
    key = uuid.UUID(hashlib.md5(user.encode()).hexdigest())

    def folded_in() -> bool:
        with psycopg.connect(platform.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM rollup_last_seen WHERE kind = 'u' AND key = %s", (key,)
            ).fetchone()
        return row is not None and row[0] == 1

    bound = 10 + 2 * platform.settings.rollup_refresh_s + 30  # lag, two passes, a busy machine
    wait_for(folded_in, bound, "the new user in rollup_last_seen")
