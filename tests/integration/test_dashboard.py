"""The rollups and the dashboard against a real (embedded) PostgreSQL with hand-made
traffic: the metric definitions, incremental refreshes, login, and the read-only pages.
(The pages that call the gRPC API run against the real platform in
test_dashboard_platform.py.)"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import auth
from dashboard.queries import catalogue, engagement, system
from dashboard.queries import parameters as parameter_queries
from dashboard.queries import users as user_queries
from serving.adapters.postgres import rollups
from serving.adapters.postgres.db import migrate, start_embedded
from serving.config import Settings
from tests.conftest import free_port

pytestmark = pytest.mark.integration

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
HOUR = engagement.WINDOWS["Last hour"]
DAY = engagement.WINDOWS["Last 24 h"]
LOGIN = ("alice", "wonderland")
USERS_SETTING = "alice:wonderland,bob:builder"

R1 = "11111111-1111-4111-8111-111111111111"  # 40 min ago: a, b, c
R2 = "22222222-2222-4222-8222-222222222222"  # 5 min ago: a, c
R_OLD = "33333333-3333-4333-8333-333333333333"  # 2 h ago: outside the hour

SEED = f"""
INSERT INTO items (item_id, title, categories, embedding, created_at)
VALUES ('a', 'Item a', '{{books}}', array_fill(0.1::real, ARRAY[384]), now() - interval '30 days'),
       ('b', 'Item b', '{{books}}', array_fill(0.2::real, ARRAY[384]), now() - interval '30 days'),
       ('c', 'Item c', '{{music}}', array_fill(-0.1::real, ARRAY[384]), now() - interval '1 day');
INSERT INTO item_stats (item_id, popularity) VALUES ('a', 10), ('b', 1), ('c', 0);

INSERT INTO parameter_versions (parameters, changed_by, reason, created_at) VALUES
  ('{{"relevance_weight": 1.0, "popularity_weight": 0.15, "exclude_seen": true}}',
   'system', 'initial defaults', now() - interval '1 day'),
  ('{{"relevance_weight": 1.0, "popularity_weight": 0.3, "exclude_seen": true}}',
   'alice', 'more popular items', now() - interval '50 minutes');

INSERT INTO recommendations (recommendation_id, user_id, session_id, variant,
                             parameter_version, model_version, latency_ms, degraded, created_at)
VALUES ('{R1}', 'u1', '', 'control', 2, '1', 12, false, now() - interval '40 minutes'),
       ('{R2}', 'u2', '', 'control', 2, '1', 30, true, now() - interval '5 minutes'),
       ('{R_OLD}', 'u3', '', 'control', 1, '1', 100, false, now() - interval '2 hours');

INSERT INTO impressions (recommendation_id, position, item_id, score, created_at)
VALUES ('{R1}', 0, 'a', 0.9, now() - interval '40 minutes'),
       ('{R1}', 1, 'b', 0.8, now() - interval '40 minutes'),
       ('{R1}', 2, 'c', 0.7, now() - interval '40 minutes'),
       ('{R2}', 0, 'a', 0.9, now() - interval '5 minutes'),
       ('{R2}', 1, 'c', 0.8, now() - interval '5 minutes'),
       ('{R_OLD}', 0, 'a', 0.9, now() - interval '2 hours'),
       ('{R_OLD}', 1, 'b', 0.8, now() - interval '2 hours');

-- type: 1 click, 2 like, 5 add to cart, 6 purchase
INSERT INTO events (event_id, user_id, session_id, item_id, type, recommendation_id, occurred_at)
VALUES
  -- attributed: R1/a (clicked twice, one clicked impression), R2/a
  ('e1', 'u1', '', 'a', 1, '{R1}', now() - interval '39 minutes'),
  ('e2', 'u1', '', 'a', 1, '{R1}', now() - interval '38 minutes'),
  ('e3', 'u2', '', 'a', 1, '{R2}', now() - interval '4 minutes'),
  -- attributed: stamped 30 s before its impression was written (batching, client clocks)
  ('e4', 'u1', '', 'b', 1, '{R1}', now() - interval '40 minutes 30 seconds'),
  -- not attributed: 31 minutes after the impression
  ('e5', 'u1', '', 'c', 1, '{R1}', now() - interval '9 minutes'),
  -- not attributed: item b was not shown in R2; a malformed id; no recommendation
  ('e6', 'u2', '', 'b', 1, '{R2}', now() - interval '4 minutes'),
  ('e7', 'u2', '', 'a', 1, 'not-a-uuid', now() - interval '4 minutes'),
  ('e8', '', 's9', 'a', 1, NULL, now() - interval '3 minutes'),
  ('e9', 'u1', '', 'a', 2, '{R1}', now() - interval '37 minutes'),
  ('e10', 'u2', '', 'a', 6, '{R2}', now() - interval '3 minutes'),
  ('e11', 'u2', '', 'a', 5, '{R2}', now() - interval '3 minutes');
"""

# Hand-computed for the last hour.
IMPRESSIONS, CLICKS, LIKES, ADD_TO_CARTS, PURCHASES = 5, 3, 1, 1, 1
ACTIVE_USERS, ACTIVE_SESSIONS = 3, 1  # u1, u2, session:s9; s9


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    handle = start_embedded(tmp_path_factory.mktemp("dashboard-pg"))
    yield handle
    handle.cleanup()


def _database(server: Any, name: str) -> str:
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = str(server.get_uri(name))
    migrate(url)
    return url


def refresh(url: str, windows_every: timedelta = timedelta(0)) -> list[rollups.Pass]:
    """Fold everything written so far into the rollups, as a server's refresher does (and
    recompute the per-item windows if they are ``windows_every`` old)."""

    async def run() -> list[rollups.Pass]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await rollups.catch_up(
                conn, lag=timedelta(0), windows_every=windows_every, wait=True
            )

    return asyncio.run(run())


@pytest.fixture(scope="module")
def seeded_url(server: Any) -> str:
    url = _database(server, "seeded")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED)
    refresh(url)
    return url


@pytest.fixture(scope="module")
def empty_url(server: Any) -> str:
    return _database(server, "empty")


def _metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def _app(url: str, monkeypatch: pytest.MonkeyPatch, operator: str | None = "alice") -> AppTest:
    monkeypatch.setenv("RECSYS_DATABASE_URL", url)
    monkeypatch.setenv("RECSYS_DASHBOARD_USERS", USERS_SETTING)
    at = AppTest.from_file(APP, default_timeout=60)
    if operator is not None:
        at.session_state["operator"] = operator
    return at


def test_rollups_compute_the_metrics(seeded_url: str) -> None:
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        hour = engagement.series(conn, HOUR)
        totals = engagement.totals(conn, HOUR, hour)
        day = engagement.totals(conn, DAY, engagement.series(conn, DAY))
        changes = engagement.parameter_changes(conn, HOUR)
        serving = system.latency(conn, HOUR)
        items = catalogue.summary(conn, 30)
        top = catalogue.top_items(conn, 30)
        history = parameter_queries.history(conn)
    assert 60 <= len(hour) <= 62  # every minute of the hour, zeros included
    assert totals["impressions"] == IMPRESSIONS
    assert totals["attributed_clicks"] == CLICKS
    assert totals["ctr"] == pytest.approx(CLICKS / IMPRESSIONS)
    assert totals["conversion"] == pytest.approx(PURCHASES / IMPRESSIONS)
    assert totals["clicks"] == 8  # every click event
    assert (totals["likes"], totals["add_to_carts"], totals["purchases"]) == (
        LIKES,
        ADD_TO_CARTS,
        PURCHASES,
    )
    assert (totals["active_users"], totals["active_sessions"]) == (ACTIVE_USERS, ACTIVE_SESSIONS)
    assert day["impressions"] == 7 and day["attributed_clicks"] == CLICKS
    assert list(changes["version"]) == [2] and changes["by"][0] == "alice"
    assert serving["recommendations"] == 2 and serving["degraded_share"] == pytest.approx(0.5)
    assert 10 <= (serving["p50_ms"] or 0) <= 30  # histogram estimate between 12 and 30 ms
    # Catalogue: a, b, c of 3 items shown in 30 days; the head (top 20%) is item a.
    assert items["coverage"] == pytest.approx(1.0)
    assert items["long_tail_share"] == pytest.approx(4 / 7)  # b twice, c twice of 7
    assert items["cold_items"] == 1 and items["cold_share"] == pytest.approx(2 / 7)
    assert list(top["item_id"]) == ["a", "b", "c"]
    assert list(top["clicks"]) == [2, 1, 0]
    assert list(history["changes"]) == ["popularity_weight: 0.15 -> 0.3", "initial"]


def test_refreshes_are_incremental_and_count_each_impression_once(server: Any) -> None:
    url = _database(server, "incremental")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED)
    refresh(url)
    with psycopg.connect(url, autocommit=True) as conn:
        # A repeat click on an already clicked impression, a first click on another, and a
        # late event stamped 20 minutes ago that arrives now.
        conn.execute(
            f"""
            INSERT INTO events (event_id, user_id, item_id, type, recommendation_id,
                                occurred_at)
            VALUES ('late-1', 'u2', 'a', 1, '{R2}', now() - interval '2 minutes'),
                   ('late-2', 'u2', 'c', 1, '{R2}', now() - interval '2 minutes'),
                   ('late-3', 'u4', 'b', 2, NULL, now() - interval '20 minutes')
            """
        )
    assert len(refresh(url)) == 1
    refresh(url)  # nothing new: nothing changes
    with psycopg.connect(url, autocommit=True) as conn:
        totals = engagement.totals(conn, HOUR, engagement.series(conn, HOUR))
    assert totals["attributed_clicks"] == CLICKS + 1
    assert totals["likes"] == LIKES + 1
    assert totals["active_users"] == ACTIVE_USERS + 1


def _windows_watermarks(url: str) -> tuple[datetime, datetime]:
    """When the per-item windows were recomputed, and when the next recompute is due."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = dict(
            conn.execute(
                "SELECT name, watermark FROM rollup_watermarks WHERE name = ANY(%s)",
                ([rollups.ITEM_WINDOWS, rollups.ITEM_WINDOWS_NEXT],),
            ).fetchall()
        )
    return rows[rollups.ITEM_WINDOWS], rows[rollups.ITEM_WINDOWS_NEXT]


def _set_windows_watermarks(url: str, done: str, due: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in ((rollups.ITEM_WINDOWS, done), (rollups.ITEM_WINDOWS_NEXT, due)):
            conn.execute(
                f"UPDATE rollup_watermarks SET watermark = {value} WHERE name = %s", (name,)
            )


def test_catalogue_counts_what_was_shown_at_the_next_pass(server: Any) -> None:
    url = _database(server, "catalogue-live")
    refresh(url, rollups.ITEM_WINDOWS_EVERY)  # a server's first pass: nothing shown yet
    done, due = _windows_watermarks(url)
    # Recomputing a small catalogue's windows takes milliseconds: the next recompute is due
    # by the refresher's next pass, not ITEM_WINDOWS_EVERY later.
    assert due - done < timedelta(seconds=Settings.model_fields["rollup_refresh_s"].default)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED)
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
    refresh(url, rollups.ITEM_WINDOWS_EVERY)  # the servers' own schedule
    with psycopg.connect(url, autocommit=True) as conn:
        day = engagement.totals(conn, DAY, engagement.series(conn, DAY))
        month = catalogue.summary(conn, 30)
        top = catalogue.top_items(conn, 30)
        assert catalogue.computed_at(conn) > done
    assert month["impressions"] == day["impressions"] == 7  # what the overview counts
    assert list(top["clicks"]) == [2, 1, 0]

    # Not due: left alone. A new UTC day: recomputed at once ("today" changed).
    _set_windows_watermarks(url, "now()", "now() + interval '1 hour'")
    before, _ = _windows_watermarks(url)
    refresh(url, rollups.ITEM_WINDOWS_EVERY)
    assert _windows_watermarks(url)[0] == before
    _set_windows_watermarks(
        url,
        "date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 s'",
        "now() + interval '1 hour'",
    )
    refresh(url, rollups.ITEM_WINDOWS_EVERY)
    assert _windows_watermarks(url)[0] > before


def test_login_is_required_and_checked(seeded_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(seeded_url, monkeypatch, operator=None).run()
    assert not at.exception, at.exception
    assert not at.metric  # nothing readable before logging in
    at.text_input(key="login_name").set_value("alice")
    at.text_input(key="login_password").set_value("wrong")
    at.button[0].click().run()
    assert any("wrong password" in e.value for e in at.error)
    assert "operator" not in at.session_state
    at.text_input(key="login_password").set_value(LOGIN[1])
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.session_state["operator"] == "alice"
    assert _metrics(at)["Impressions"] == str(IMPRESSIONS)  # the Overview
    assert any("alice" in caption.value for caption in at.sidebar.caption)


@pytest.fixture
def fresh_throttle() -> Iterator[None]:
    """A clean login throttle: it is process-wide, and AppTest runs the app in this process."""
    auth.throttle.clear()
    yield
    auth.throttle.clear()


@pytest.mark.usefixtures("fresh_throttle")
def test_repeated_failed_logins_are_throttled_and_logged(
    seeded_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dashboard.auth")
    at = _app(seeded_url, monkeypatch, operator=None).run()
    gate = auth.throttle()

    def log_in(password: str) -> None:
        at.text_input(key="login_name").set_value("bob")
        at.text_input(key="login_password").set_value(password)
        at.button[0].click().run()
        assert not at.exception, at.exception

    for _ in range(gate.free_failures + 1):
        log_in("guess")
        assert [e.value for e in at.error] == ["Unknown operator or wrong password."]
    log_in("builder")  # the right password, during the lock: refused unchecked
    assert "operator" not in at.session_state
    assert any("Too many failed logins" in e.value for e in at.error), at.error
    failed = [r for r in caplog.records if r.getMessage().startswith("failed login for 'bob'")]
    assert len(failed) == gate.free_failures + 1
    assert f"({gate.free_failures + 1} in a row for this name" in failed[-1].getMessage()
    assert any(r.getMessage().startswith("login refused for 'bob'") for r in caplog.records)

    time.sleep(gate.base_delay_s)  # the first lock lapses: the right password works
    log_in("builder")
    assert at.session_state["operator"] == "bob"
    assert gate.failures("bob", None) == (0, 0)


def test_overview_shows_the_metrics(seeded_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(seeded_url, monkeypatch).run()
    assert not at.exception, at.exception
    assert not at.error
    metrics = _metrics(at)
    assert metrics["Impressions"] == str(IMPRESSIONS)
    assert metrics["Clicks"] == str(CLICKS)
    assert metrics["CTR"] == "60.00%"
    assert metrics["Conversion"] == "20.00%"
    assert metrics["Likes"] == str(LIKES)
    assert metrics["Add to cart"] == str(ADD_TO_CARTS)
    assert metrics["Purchases"] == str(PURCHASES)
    assert metrics["Active users"] == str(ACTIVE_USERS)
    assert metrics["Active sessions"] == str(ACTIVE_SESSIONS)
    assert len(at.get("vega_lite_chart")) == 2  # the Altair charts
    assert any("1 parameter change" in c.value for c in at.caption)

    # Another window: the 2-hour-old recommendation now counts.
    at.radio(key="window").set_value("Last 24 h").run()
    assert not at.exception, at.exception
    assert _metrics(at)["Impressions"] == "7"
    assert _metrics(at)["CTR"] == f"{3 / 7:.2%}"


def test_catalogue_shows_items_and_nearest_by_content(
    seeded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _app(seeded_url, monkeypatch)
    at.switch_page("views/catalogue.py").run()
    assert not at.exception, at.exception
    metrics = _metrics(at)
    assert metrics["Coverage"] == "100.0%" and metrics["Long-tail share"] == "57.1%"
    assert len(at.get("vega_lite_chart")) == 2
    at.text_input(key="item_search").set_value("Item b").run()
    assert not at.exception, at.exception
    nearest = at.dataframe[-1].value
    # Same direction as b: a (cosine 1); opposite: c (cosine -1).
    assert list(nearest["item_id"]) == ["a", "c"]
    assert nearest["similarity"][0] == pytest.approx(1.0, abs=1e-4)


RECENT_USERS = """
INSERT INTO users (user_id, last_seen_at)
VALUES ('u1', now() - interval '10 minutes'), ('u2', now() - interval '1 minute'),
       ('u3', now() - interval '2 days')
ON CONFLICT DO NOTHING;
INSERT INTO user_state (subject, item_ids, event_types)
VALUES ('u2', '{c,b,a}', '{1,2,6}') ON CONFLICT DO NOTHING;
"""


def test_users_page_lists_the_recently_active_users(
    seeded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        conn.execute(RECENT_USERS)
        recent = user_queries.recent_users(conn)
        assert list(user_queries.recent_users(conn, limit=2)["user_id"]) == ["u2", "u1"]
    assert list(recent["user_id"]) == ["u2", "u1", "u3"]  # newest first
    assert list(recent["events"]) == [5, 5, 0]  # as seeded in SEED
    assert recent["last_items"][0] == ["a", "b", "c"]  # newest first
    assert recent["last_types"][0] == ["purchase", "like", "click"]
    assert recent["last_items"][1] == [] and recent["last_items"][2] == []

    at = _app(seeded_url, monkeypatch)
    at.switch_page("views/users.py").run()
    assert not at.exception, at.exception
    picker = at.selectbox(key="recent_user")
    # (u2 was seen a minute before the page ran: "1 min ago" or, on a slow run, "2 min ago")
    assert picker.options[0].startswith("u2 · seen ")
    assert picker.options[0].endswith(
        " · 5 events · Item a (purchase), Item b (like), Item c (click)"
    )
    assert picker.options[1:] == [
        "u1 · seen 10 min ago · 5 events · -",
        "u3 · seen 2 days ago · 0 events · -",
    ]
    assert picker.value is None and at.text_input(key="user_id").value == ""
    listed = at.dataframe[0].value
    assert list(listed["user_id"]) == ["u2", "u1", "u3"]


def test_read_only_pages_on_an_empty_database(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _app(empty_url, monkeypatch).run()
    assert not at.exception, at.exception
    assert _metrics(at)["Impressions"] == "0"
    assert any("No traffic yet" in info.value for info in at.info)
    at.switch_page("views/catalogue.py").run()
    assert not at.exception, at.exception
    assert any("Nothing shown" in info.value for info in at.info)
    at.switch_page("views/experiments.py").run()
    assert not at.exception, at.exception
    assert any("No experiment yet" in info.value for info in at.info)
    at.switch_page("views/users.py").run()
    assert not at.exception, at.exception
    assert any("No user has sent feedback yet" in info.value for info in at.info)
    assert at.selectbox(key="recent_user").options == []


def test_dashboard_without_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_DATABASE_URL", raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1
    assert "RECSYS_DATABASE_URL" in at.error[0].value
    assert "make run" in at.error[0].value
    assert not at.metric


def test_dashboard_survives_an_unreachable_database(monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(f"postgresql://nobody@127.0.0.1:{free_port()}/x", monkeypatch).run()
    assert not at.exception, at.exception
    assert any("Cannot read the database" in warning.value for warning in at.warning)
