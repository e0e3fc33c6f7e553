"""The dashboard against a real (embedded) PostgreSQL with hand-made traffic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import queries
from serving.store.db import migrate, start_embedded
from tests.conftest import free_port

pytestmark = pytest.mark.integration

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
HOUR = queries.WINDOWS["Last hour"]

R1 = "11111111-1111-4111-8111-111111111111"  # 40 min ago: a, b, c
R2 = "22222222-2222-4222-8222-222222222222"  # 5 min ago: a, c
R_OLD = "33333333-3333-4333-8333-333333333333"  # 2 h ago: outside the hour

SEED = f"""
INSERT INTO items (item_id, title, embedding)
SELECT id, 'Item ' || id, array_fill(0::real, ARRAY[384]) FROM unnest(ARRAY['a', 'b', 'c']) AS id;

INSERT INTO parameter_versions (parameters, changed_by, reason, created_at) VALUES
  ('{{"relevance_weight": 1.0, "popularity_weight": 0.15, "exclude_seen": true}}',
   'system', 'initial defaults', now() - interval '1 day'),
  ('{{"relevance_weight": 1.0, "popularity_weight": 0.3, "exclude_seen": true}}',
   'alice', 'more popular items', now() - interval '1 hour');

INSERT INTO recommendations (recommendation_id, user_id, session_id, variant,
                             parameter_version, model_version, latency_ms, degraded, created_at)
VALUES ('{R1}', 'u1', '', 'A', 2, '1', 12, false, now() - interval '40 minutes'),
       ('{R2}', 'u2', '', 'A', 2, '1', 30, true, now() - interval '5 minutes'),
       ('{R_OLD}', 'u3', '', 'A', 1, '1', 100, false, now() - interval '2 hours');

INSERT INTO impressions (recommendation_id, position, item_id, score, created_at)
VALUES ('{R1}', 0, 'a', 0.9, now() - interval '40 minutes'),
       ('{R1}', 1, 'b', 0.8, now() - interval '40 minutes'),
       ('{R1}', 2, 'c', 0.7, now() - interval '40 minutes'),
       ('{R2}', 0, 'a', 0.9, now() - interval '5 minutes'),
       ('{R2}', 1, 'c', 0.8, now() - interval '5 minutes'),
       ('{R_OLD}', 0, 'a', 0.9, now() - interval '2 hours'),
       ('{R_OLD}', 1, 'b', 0.8, now() - interval '2 hours');

-- type: 1 click, 2 like, 6 purchase
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
  ('e10', 'u2', '', 'a', 6, '{R2}', now() - interval '3 minutes');
"""

# Hand-computed for the last hour.
IMPRESSIONS, CLICKS, LIKES, PURCHASES, ACTIVE = 5, 3, 1, 1, 3  # active: u1, u2, session:s9


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


@pytest.fixture(scope="module")
def seeded_url(server: Any) -> str:
    url = _database(server, "seeded")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED)
    return url


@pytest.fixture(scope="module")
def empty_url(server: Any) -> str:
    return _database(server, "empty")


def _metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def _tables_text(at: AppTest) -> str:
    """The text of every table on the page."""
    parts = [frame.value.to_string() for frame in at.dataframe]
    return "\n".join(parts)


def test_queries_compute_the_metrics(seeded_url: str) -> None:
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        per_minute = queries.engagement_per_minute(conn, HOUR)
        totals = queries.summary(conn, HOUR)
        serving = queries.latency(conn, HOUR)
        current = queries.current_parameters(conn)
        history = queries.parameter_history(conn)
        day = queries.summary(conn, queries.WINDOWS["Last 24 h"])
    assert 60 <= len(per_minute) <= 62  # every minute of the hour, zeros included
    assert per_minute["impressions"].sum() == IMPRESSIONS
    assert totals == {
        "impressions": IMPRESSIONS,
        "clicks": CLICKS,
        "ctr": pytest.approx(3 / 5),
        "conversion": pytest.approx(1 / 5),
        "events": 10,
        "likes": LIKES,
        "purchases": PURCHASES,
        "active_users": ACTIVE,
    }
    assert day["impressions"] == 7 and day["clicks"] == CLICKS
    assert serving["recommendations"] == 2
    assert serving["p50_ms"] == pytest.approx(21.0)
    assert serving["p99_ms"] == pytest.approx(12 + 0.99 * 18)
    assert serving["degraded_share"] == pytest.approx(0.5)
    assert current is not None
    assert current["version"] == 2 and current["changed_by"] == "alice"
    assert current["parameters"]["popularity_weight"] == 0.3
    assert list(history["version"]) == [2, 1]
    assert list(history["changes"]) == ["popularity_weight: 0.15 -> 0.3", "initial"]


def test_dashboard_shows_the_metrics_and_parameters(
    seeded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECSYS_DATABASE_URL", seeded_url)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert not at.error
    assert not any("SLOW_WINDOW" in md.value for md in at.markdown)  # no stray text
    metrics = _metrics(at)
    assert metrics["Impressions"] == str(IMPRESSIONS)
    assert metrics["Clicks"] == str(CLICKS)
    assert metrics["CTR"] == "60.00%"
    assert metrics["Likes"] == str(LIKES)
    assert metrics["Purchases"] == str(PURCHASES)
    assert metrics["Active users"] == str(ACTIVE)
    assert metrics["Latency p50"] == "21.0 ms"
    assert metrics["Degraded"] == "50.0%"
    assert any("Version 2" in md.value and "alice" in md.value for md in at.markdown)
    assert "popularity_weight: 0.15 -> 0.3" in _tables_text(at)
    values = at.dataframe[0].value
    shown = dict(zip(values["parameter"], values["value"], strict=True))
    assert shown["popularity_weight"] == "0.3"
    assert at.get("vega_lite_chart")  # the Altair chart

    # Another window: the 2-hour-old recommendation now counts.
    at.radio[0].set_value("Last 24 h").run()
    assert not at.exception, at.exception
    assert _metrics(at)["Impressions"] == "7"
    assert _metrics(at)["CTR"] == f"{3 / 7:.2%}"


def test_dashboard_on_an_empty_database(empty_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_DATABASE_URL", empty_url)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert not at.error
    metrics = _metrics(at)
    assert metrics["Impressions"] == "0" and metrics["CTR"] == "0.00%"
    assert metrics["Latency p50"] == "-"
    assert any("No traffic yet" in info.value for info in at.info)
    assert any("No parameter version yet" in info.value for info in at.info)


def test_dashboard_without_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_DATABASE_URL", raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1
    assert "RECSYS_DATABASE_URL" in at.error[0].value
    assert "make run" in at.error[0].value
    assert not at.metric


def test_dashboard_survives_an_unreachable_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("Cannot read the database" in warning.value for warning in at.warning)
