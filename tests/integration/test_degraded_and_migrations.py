"""Fallback without Triton, and the Alembic round trip on empty and populated databases."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from serving.adapters.postgres.db import migrate
from serving.client import RecsysClient
from tests.conftest import free_port
from tests.integration.platform import Running, grpc_server

pytestmark = pytest.mark.integration


def test_recommend_degrades_to_the_fallback_when_triton_is_unreachable(platform: Running, tmp_path):
    settings = platform.settings.model_copy(
        update={
            "grpc_port": free_port(),
            "metrics_port": 0,
            "triton_grpc_port": free_port(),
            "triton_timeout_ms": 150,
        }
    )
    with (
        grpc_server(settings, tmp_path / "degraded.log"),
        RecsysClient(settings.grpc_target, retries=0, timeout_s=2) as client,
    ):
        started = time.perf_counter()
        rec = client.recommend(f"user-{uuid.uuid4()}", k=10)
        assert time.perf_counter() - started < 2
        assert rec.degraded and len(rec.items) == 10 and rec.model_version == ""
        assert all(item.components["relevance"] == 0 for item in rec.items)


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows} - {"alembic_version"}


@pytest.fixture
def empty_database(platform: Running) -> Iterator[str]:
    """A new database on the platform's server. (Not a new embedded server: its initdb
    forks this process, whose gRPC threads can leave the forked child deadlocked.)"""
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(platform.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(platform.url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(platform.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_migrations_round_trip_on_empty_and_populated_databases(empty_database: str):
    url = empty_database
    migrate(url)
    created = tables(url)
    assert {"items", "events", "impressions", "user_state", "parameter_versions"} <= created
    migrate(url, "base", downgrade=True)
    assert tables(url) == set()
    migrate(url)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO items (item_id, title, embedding) VALUES ('i', 't', '{0.5}')")
        conn.execute("INSERT INTO item_stats (item_id) VALUES ('i')")
        conn.execute(
            "INSERT INTO events (event_id, item_id, type, occurred_at) VALUES ('e', 'i', 1, now())"
        )
        conn.execute(
            "INSERT INTO recommendations (recommendation_id, variant, parameter_version,"
            " model_version, latency_ms, degraded) VALUES (%s, 'control', 1, '1', 2, false)",
            (uuid.uuid4(),),
        )
        conn.execute(
            "INSERT INTO parameter_versions (parameters, changed_by, reason)"
            " VALUES ('{}', 'me', 'test')"
        )
    migrate(url, "base", downgrade=True)
    assert tables(url) == set()
    migrate(url)
    assert tables(url) == created
