"""`recsys` commands against the running platform's database."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql

from serving.adapters.postgres.db import PROJECT_ROOT
from serving.config import Settings
from tests.integration.platform import Running

pytestmark = pytest.mark.integration


def run_recsys(
    settings: Settings, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`recsys ARGS` as a user runs it, with ``settings`` (and ``env``), whatever its exit
    code."""
    return subprocess.run(
        [sys.executable, "-m", "serving.cli", *args],
        env={"PATH": str(Path(sys.executable).parent), **settings.to_env(), **(env or {})},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def recsys(platform: Running, *args: str, env: dict[str, str] | None = None) -> str:
    """`recsys ARGS` with the platform's settings; it must succeed."""
    result = run_recsys(platform.settings, *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bootstrap_model_exports_once_into_an_empty_repository(platform, tmp_path):
    first = recsys(platform, "bootstrap-model", "--repository", str(tmp_path), "--no-load")
    # The number follows the newest item space stored (other tests may have exported some).
    match = re.search(r"exported user_encoder v(\d+)", first)
    assert match and int(match.group(1)) >= 2, first  # v1 is the one the platform serves
    [version] = [p for p in (tmp_path / "user_encoder").iterdir() if p.is_dir()]
    assert version.name == match.group(1)
    files = {p.name for p in version.iterdir()}
    assert files == {
        "model.py", "weights.pt", "config.json", "content_encoder.json", "known_items.npy"
    }  # fmt: skip
    again = recsys(platform, "bootstrap-model", "--repository", str(tmp_path), "--no-load")
    assert "nothing to do" in again


def test_prepare_models_renders_the_gpu_configs(platform, tmp_path):
    recsys(platform, "prepare-models", "--kind", "KIND_GPU", "--out", str(tmp_path))
    for model in ("content_encoder", "user_encoder"):
        config = (tmp_path / model / "config.pbtxt").read_text()
        assert "kind: KIND_GPU" in config and "KIND_CPU" not in config
    assert (tmp_path / "content_encoder" / "1" / "model.py").exists()


def test_migrate_upgrades_an_empty_database_and_downgrades_it(platform: Running):
    name = f"migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(platform.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = platform.url.replace("/postgres?", f"/{name}?", 1)
    assert url != platform.url
    head = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini"))).get_current_head()

    def state() -> tuple[set[str], list[tuple[str]]]:
        with psycopg.connect(url) as conn:
            tables = {
                r[0]
                for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            }
            version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        return tables, version

    recsys(platform, "migrate", env={"RECSYS_DATABASE_URL": url})
    tables, version = state()
    assert {"items", "events", "user_state", "parameter_versions", "rollup_minute"} <= tables
    assert version == [(head,)]
    recsys(platform, "migrate", env={"RECSYS_DATABASE_URL": url})  # again: nothing to do
    assert state() == (tables, version)
    recsys(platform, "migrate", "base", "--downgrade", env={"RECSYS_DATABASE_URL": url})
    assert state() == ({"alembic_version"}, [])


def test_simulate_sends_traffic_that_is_stored(platform: Running):
    simulated = "user_id ~ '^user-[0-9]{5}$'"  # the simulator's users (user-00042)

    def counts() -> tuple[int, int]:
        with psycopg.connect(platform.url) as conn:
            events = conn.execute(f"SELECT count(*) FROM events WHERE {simulated}").fetchone()
            recs = conn.execute(f"SELECT count(*) FROM recommendations WHERE {simulated}")
            return events[0], recs.fetchone()[0]  # type: ignore[index]

    events_before, recs_before = counts()
    out = recsys(platform, "simulate", "--duration", "3", env={"RECSYS_SIMULATE_RATE": "20"})
    stats = {k: int(v) for k, v in re.findall(r"(recommends|events|clicks)=(\d+)", out)}
    assert stats["recommends"] > 10 and stats["events"] > 0, out
    assert "errors={}" in out, out
    events_after, _ = counts()
    assert events_after - events_before == stats["events"]  # acknowledged means stored

    def recommendations_written() -> bool:  # impressions are written after the answer
        return counts()[1] - recs_before == stats["recommends"]

    deadline = time.monotonic() + 30
    while not recommendations_written():
        assert time.monotonic() < deadline, (counts(), recs_before, stats)
        time.sleep(0.1)
