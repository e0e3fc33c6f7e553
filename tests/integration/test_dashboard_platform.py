"""The dashboard's pages against the real platform (embedded PostgreSQL, tritonserver, the
gRPC server with its rollup refresher): real traffic, and every write through the Admin
API with the operator's name."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button

from serving.adapters.postgres import rollups
from serving.client import Event, RecsysClient
from tests.integration.platform import Running, wait_for_version

pytestmark = pytest.mark.integration

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
OPERATOR = "tester"
USERS = 3


def refresh(url: str) -> None:
    """Fold the traffic so far into the rollups now (the server does it every 10 s)."""

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await rollups.catch_up(conn, lag=timedelta(0), windows_every=timedelta(0), wait=True)

    asyncio.run(run())


def make_traffic(platform: Running, names: list[str]) -> None:
    """A recommendation of 10 items for each of ``names``, a click and a purchase on its
    first item, all folded into the rollups."""
    with RecsysClient(platform.target) as client:
        for name in names:
            rec = client.recommend(name, k=10)
            client.log_feedback(
                [
                    Event(
                        rec.items[0].item_id,
                        kind,
                        user_id=name,
                        recommendation_id=rec.recommendation_id,
                    )
                    for kind in ("click", "purchase")
                ]
            )
    with psycopg.connect(platform.url, autocommit=True) as conn:
        # Impressions are written in batches after the answer: wait for them.
        def written() -> bool:
            row = conn.execute(
                "SELECT count(*) FROM impressions JOIN recommendations USING (recommendation_id)"
                " WHERE user_id = ANY(%s)",
                (names,),
            ).fetchone()
            return row is not None and row[0] == 10 * len(names)

        deadline = time.monotonic() + 30
        while not written():
            assert time.monotonic() < deadline, "impressions not written within 30 s"
            time.sleep(0.05)
    refresh(platform.url)


def fresh_users() -> list[str]:
    return [f"dash-{uuid.uuid4().hex[:8]}-{n}" for n in range(USERS)]


@pytest.fixture(scope="module")
def users(platform: Running) -> list[str]:
    """A few users with a recommendation each and a click and a purchase on it."""
    names = fresh_users()
    make_traffic(platform, names)
    return names


@pytest.fixture
def app(platform: Running, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    """The dashboard with the platform's settings, an operator signed in."""
    for name in [k for k in os.environ if k.startswith("RECSYS_")]:
        monkeypatch.delenv(name)
    for name, value in platform.settings.to_env().items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["operator"] = OPERATOR
    yield at


def _page(at: AppTest, name: str) -> AppTest:
    at.switch_page(f"views/{name}.py").run()
    assert not at.exception, at.exception
    return at


def _button(at: AppTest, label: str) -> Button:
    return next(b for b in at.button if b.label == label)


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _count(at: AppTest, label: str) -> int:
    return int(_metric(at, label).replace(",", ""))


COUNTED = ("Impressions", "Clicks", "Purchases", "Active users")


def test_overview_and_system_show_the_platform(
    app: AppTest, users: list[str], platform: Running
) -> None:
    at = app.run()
    assert not at.exception, at.exception
    before = {label: _count(at, label) for label in COUNTED}
    make_traffic(platform, fresh_users())  # nothing else sends traffic meanwhile
    at.run()
    assert not at.exception, at.exception
    after = {label: _count(at, label) for label in COUNTED}
    # Exactly the new traffic: 10 impressions, an attributed click and a purchase each.
    assert {label: after[label] - before[label] for label in COUNTED} == {
        "Impressions": 10 * USERS,
        "Clicks": USERS,
        "Purchases": USERS,
        "Active users": USERS,
    }

    _page(at, "system")
    assert not at.warning, [w.value for w in at.warning]
    tables = [frame.value for frame in at.dataframe]
    models = next(t for t in tables if "model" in t.columns)
    assert {"content_encoder", "user_encoder"} <= set(models["model"])
    assert set(models["state"]) == {"READY"}
    methods = next(t for t in tables if "method" in t.columns)
    assert "Recommend" in set(methods["method"])
    assert _metric(at, "p50") != "-"


def test_users_page_recommends_explains_and_forgets(
    app: AppTest, users: list[str], platform: Running
) -> None:
    at = _page(app, "users")
    at.text_input(key="user_id").set_value(users[0]).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    events, recommendations = at.dataframe[0].value, at.dataframe[1].value
    assert set(events["type"]) == {"click", "purchase"}
    assert len(recommendations) == 10
    assert "because you engaged with" in recommendations.columns
    assert _button(at, "Forget this user").disabled  # not before confirming

    at.checkbox(key="forget_confirm").check().run()
    _button(at, "Forget this user").click().run()
    assert any("2 events deleted" in s.value for s in at.success), [s.value for s in at.success]
    with psycopg.connect(platform.url) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE user_id = %s", (users[0],))
        assert row.fetchone() == (0,)


@pytest.mark.usefixtures("restore_parameters")
def test_parameters_page_validates_previews_saves_and_rolls_back(
    app: AppTest, client: RecsysClient, users: list[str]
) -> None:
    before = client.get_parameters()
    at = _page(app, "parameters")
    weight = at.number_input(key="param_popularity_weight")

    weight.set_value(0.42)
    _button(at, "Save").click().run()
    assert any("reason is required" in e.value for e in at.error)

    at.number_input(key="param_popularity_weight").set_value(-1.0)
    at.text_input(key="param_reason").set_value("dashboard test")
    _button(at, "Save").click().run()
    assert any("popularity_weight" in e.value for e in at.error), [e.value for e in at.error]
    assert client.get_parameters()["version"] == before["version"]  # nothing written

    at.number_input(key="param_popularity_weight").set_value(0.42)
    _button(at, "Preview").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert {"Logged CTR", "Estimated CTR (SNIPS)", "Effective sample size"} <= {
        m.label for m in at.metric
    }
    assert client.get_parameters()["version"] == before["version"]  # a preview writes nothing

    _button(at, "Save").click().run()
    assert not at.error, [e.value for e in at.error]
    current = client.get_parameters()
    assert current["parameters"]["popularity_weight"] == pytest.approx(0.42)
    assert current["changed_by"] == OPERATOR and current["reason"] == "dashboard test"
    assert any(f"version {current['version']}" in s.value for s in at.success)
    wait_for_version(client, current["version"])

    at = _page(at, "parameters")
    history = at.dataframe[-1].value
    assert "popularity_weight" in history["changes"][0]
    at.selectbox(key="rollback_version").set_value(before["version"])
    _button(at, "Roll back").click().run()
    assert not at.error, [e.value for e in at.error]
    restored = client.get_parameters()
    assert restored["parameters"] == before["parameters"]
    assert restored["changed_by"] == OPERATOR


def test_experiments_page_creates_reallocates_and_stops(
    app: AppTest, client: RecsysClient, users: list[str]
) -> None:
    for running in client.list_experiments():
        if running["status"] == "running":
            client.stop_experiment(running["name"], changed_by="tests", reason="clean slate")
    name = f"dash-{uuid.uuid4().hex[:8]}"
    at = _page(app, "experiments")
    at.text_input(key="experiment_name").set_value(name)
    at.text_input(key="experiment_reason").set_value("dashboard test")
    _button(at, "Create experiment").click().run()
    assert not at.error, [e.value for e in at.error]
    try:
        at = _page(at, "experiments")
        # Pick it by name: other tests' (stopped) experiments are listed too.
        at.selectbox(key="experiment").set_value(f"{name} (running)").run()
        assert len(at.get("vega_lite_chart")) == 2  # CTR and conversion with intervals
        at.number_input(key=f"share_{name}_control").set_value(0.7)
        at.number_input(key=f"share_{name}_treatment").set_value(0.3)
        at.text_input(key=f"allocate_reason_{name}").set_value("more control")
        _button(at, "Re-allocate").click().run()
        assert not at.error, [e.value for e in at.error]
        found = next(e for e in client.list_experiments() if e["name"] == name)
        assert [v.share for v in found["variants"]] == pytest.approx([0.7, 0.3])

        at.text_input(key=f"stop_reason_{name}").set_value("done")
        _button(at, "Stop experiment").click().run()
        assert not at.error, [e.value for e in at.error]
        found = next(e for e in client.list_experiments() if e["name"] == name)
        assert found["status"] == "stopped"
    finally:
        for running in client.list_experiments():
            if running["status"] == "running":
                client.stop_experiment(running["name"], changed_by="tests", reason="clean up")


def test_catalogue_finds_an_item_and_its_neighbours(app: AppTest, users: list[str]) -> None:
    at = _page(app, "catalogue")
    assert float(_metric(at, "Coverage").rstrip("%")) > 0
    at.text_input(key="item_search").set_value("a").run()
    assert not at.exception, at.exception
    nearest = at.dataframe[-1].value
    assert len(nearest) == 10 and list(nearest["similarity"]) == sorted(
        nearest["similarity"], reverse=True
    )
