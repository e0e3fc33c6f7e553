"""Items newer than the model placed by their text, over the public API (real tritonserver
with MiniLM and the demo's user encoder, real PostgreSQL).

The demo catalogue has no beekeeping: the module adds a beekeeping shelf with UpsertItems,
items the served model never saw, published long ago so that freshness does not carry
them. A user who clicks a few of them must get mostly beekeeping next; with
``new_item_confidence`` at 0 (new items shrunk to the average known item) the same user
gets almost none, which is what every user got before new items were calibrated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from serving.client import Event, RecsysClient
from serving.core.domain import Item
from serving.stack import free_port, wait_until
from tests.integration.platform import (
    ADMIN_TOKEN,
    Running,
    grpc_server,
    query,
    set_parameters,
    wait_for_version,
)

pytestmark = pytest.mark.integration

CLICKED = 5
_SHELF = [
    ("The Beekeeper's Handbook", "Hives, frames and the seasons of a honey bee colony."),
    ("Langstroth Hive Starter Kit", "A ten-frame hive body, foundation and an entrance reducer."),
    ("Beekeeping Veil and Jacket", "Protective clothing for inspecting a hive of honey bees."),
    ("Honey Extractor, 4 Frames", "Spin the honey out of capped frames without breaking comb."),
    ("Queen Rearing Made Simple", "Raise your own queen bees and split strong colonies."),
    ("Hive Smoker with Heat Shield", "Calms the bees while you open the hive for an inspection."),
    ("Varroa Mite Treatment Guide", "Keep your honey bee colonies healthy through the winter."),
    ("Wildflower Honey Harvest", "From the apiary to the jar: harvesting and bottling honey."),
    ("Top Bar Hive Plans", "Build a horizontal hive for natural beekeeping."),
    ("Swarm Catching for Beginners", "Bait hives and how to collect a swarm of honey bees."),
    ("Beeswax Candle Making", "Render the wax from your hives into candles and balms."),
    ("Plants for Pollinators", "Flowers that feed honey bees from early spring to autumn."),
    ("The Apiary Year", "Month by month tasks for keeping bees and healthy hives."),
    ("Hive Tool and Frame Grip", "Pry apart propolis-sealed frames during hive inspections."),
    ("Observation Hive for Schools", "Watch the honey bees build comb behind glass."),
    ("Overwintering Your Bees", "Insulation, feeding and ventilation for colonies in winter."),
]


@pytest.fixture(scope="module")
def beekeeping(platform: Running) -> Iterator[list[str]]:
    """The planted items' ids (taken down again after the module)."""
    run = uuid.uuid4().hex[:8]
    long_ago = datetime(2016, 5, 1, tzinfo=UTC)
    items = [
        Item(f"bees-{run}-{n:02d}", title, text, ("beekeeping",), ("bees",), long_ago)
        for n, (title, text) in enumerate(_SHELF)
    ]
    with RecsysClient(platform.target, retries=0, timeout_s=60) as sdk:
        assert sdk.upsert_items(items) == len(items)
        yield [item.item_id for item in items]
        sdk.delete_items([item.item_id for item in items])


@pytest.fixture(scope="module")
def admin(platform: Running) -> Iterator[RecsysClient]:
    """An admin client; the parameters this module changes are restored after it."""
    with RecsysClient(platform.target, token=ADMIN_TOKEN, timeout_s=30) as client:
        before = client.get_parameters()["parameters"]
        yield client
        names = ("exploration", "new_item_confidence", "popularity_weight", "freshness_weight")
        set_parameters(client, **{name: before[name] for name in names})


def test_the_planted_items_are_new_to_the_served_model(platform, beekeeping):
    rows = query(
        platform,
        "SELECT vocabulary FROM model_artifacts ORDER BY version DESC LIMIT 1",
    )
    assert rows and set(beekeeping).isdisjoint(rows[0][0])


def test_a_user_who_clicks_new_items_gets_their_topic_next(admin, beekeeping):
    # Exploration off: Thompson draws would make "mostly beekeeping" a matter of luck.
    set_parameters(admin, exploration="off", new_item_confidence=1.0)
    user = f"bee-curious-{uuid.uuid4()}"
    clicked = beekeeping[:CLICKED]
    admin.log_feedback([Event(item_id=i, type="click", user_id=user) for i in clicked])
    answer = admin.recommend(user, k=10)
    assert not answer.degraded and answer.model_version != ""
    on_topic = [i for i in answer.item_ids if i in beekeeping]
    assert len(on_topic) >= 6, answer.item_ids  # most of the list
    assert set(answer.item_ids).isdisjoint(clicked)
    # Relevance put them there, not freshness (published years ago) nor exploration.
    for item in answer.items:
        if item.item_id in beekeeping:
            assert item.components["relevance"] > 0.5, item.components

    set_parameters(admin, new_item_confidence=0.0)
    shrunk = admin.recommend(user, k=10)
    assert sum(i in beekeeping for i in shrunk.item_ids) <= 2, shrunk.item_ids


def test_a_server_retrieving_through_faiss_ranks_as_the_exact_one(
    platform, admin, beekeeping, tmp_path
):
    """A second `recsys serve` on the same database and Triton that retrieves through the
    FAISS indexes whatever the catalogue's size (``exact_search_below`` 1): it builds them
    for the served model and the content as soon as it has loaded them, gives the
    bee-curious user the list the exact server gives, with a free-text query too (through
    the content index), and an item upserted through it is recommendable on its next
    call."""
    # Relevance alone: popularity and freshness are read by each server at its own moment
    # (its stats refresh, the second it ranks in), which may reorder near ties.
    version = set_parameters(
        admin, exploration="off", new_item_confidence=1.0, popularity_weight=0.0,
        freshness_weight=0.0,
    )  # fmt: skip
    user = f"bee-curious-{uuid.uuid4()}"
    admin.log_feedback([Event(item_id=i, type="click", user_id=user) for i in beekeeping[:5]])
    settings = platform.settings.model_copy(
        update={"grpc_port": free_port(), "metrics_port": 0, "exact_search_below": 1}
    )
    log = tmp_path / "faiss-server.log"
    with (
        grpc_server(settings, log),
        RecsysClient(settings.grpc_target, token=ADMIN_TOKEN, retries=0, timeout_s=30) as faiss,
    ):
        wait_for_version(faiss, version)
        for kind in ("item vectors", "content"):  # built without waiting for a request
            built = f"vector index built ({kind})"
            assert wait_until(lambda: built in log.read_text(), 60), log.read_text()  # noqa: B023
        exact, served = admin.recommend(user, k=10), faiss.recommend(user, k=10)
        assert not served.degraded
        # The same list, up to the order of exact ties (each server numbers its items in
        # the order it loaded them, and ties go to the lower number).
        assert [i.score for i in served.items] == pytest.approx(
            [i.score for i in exact.items], rel=1e-5
        ), (served.item_ids, exact.item_ids)
        on_topic = [sum(i in beekeeping for i in answer.item_ids) for answer in (served, exact)]
        assert on_topic[0] == on_topic[1] >= 6, (served.item_ids, exact.item_ids)
        text = "hollow stems where solitary bees nest"
        exact, served = (c.recommend(user, k=10, query=text) for c in (admin, faiss))
        assert [i.score for i in served.items] == pytest.approx(
            [i.score for i in exact.items], rel=1e-5
        ), (served.item_ids, exact.item_ids)

        late = Item(
            f"bees-late-{uuid.uuid4().hex[:8]}",
            "Bee Hotel for Solitary Bees",
            "Hollow stems and drilled blocks where mason bees nest.",
            ("beekeeping-late",),
        )
        assert faiss.upsert_items([late]) == 1
        try:
            only = faiss.recommend(user, k=3, context={"include_categories": "beekeeping-late"})
            assert only.item_ids == [late.item_id]
        finally:
            faiss.delete_items([late.item_id])
