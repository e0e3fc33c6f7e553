"""A real platform for tests: the same `Stack` that `recsys up` runs (embedded PostgreSQL,
tritonserver, demo catalogue and model, gRPC server), on free ports in a temp folder."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from serving.adapters.postgres.db import PROJECT_ROOT
from serving.client import RecsysClient
from serving.config import Settings
from serving.stack import Stack, grpc_ready, side_by_side_settings, wait_until

ADMIN_TOKEN = "test-admin-token"
CATALOGUE_SIZE = 400


@dataclass
class Running:
    settings: Settings

    @property
    def target(self) -> str:
        return self.settings.grpc_target

    @property
    def url(self) -> str:
        assert self.settings.database_url is not None
        return self.settings.database_url.get_secret_value()


def test_settings(state: Path, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        admin_token=ADMIN_TOKEN,
        demo_items=CATALOGUE_SIZE,
        triton_timeout_ms=2000,  # a loaded CI machine must not turn answers into fallbacks
        index_refresh_s=0.5,
        impression_flush_ms=50,
    )
    return side_by_side_settings(state, **(values | overrides))


def query(platform: Running, sql: str, *args: object) -> list[tuple]:
    """Rows of ``sql`` run on the platform's database."""
    with psycopg.connect(platform.url) as conn:
        return conn.execute(sql, args).fetchall()


@contextlib.contextmanager
def running_platform(state: Path) -> Iterator[Running]:
    stack = Stack(test_settings(state), simulate=False, dashboard=False)
    try:
        stack.start()
        yield Running(stack.settings)
    finally:
        stack.stop()


@contextlib.contextmanager
def grpc_server(
    settings: Settings, log: Path, ready: Callable[[], bool] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Another `recsys serve` with ``settings`` (e.g. pointing at a Triton that is down);
    ``ready`` says when it answers (default: plaintext gRPC health)."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.cli", "serve"],
            env={"PATH": str(Path(sys.executable).parent), **settings.to_env()},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
        )
        try:
            ready = ready or (lambda: grpc_ready(settings.grpc_target))
            assert wait_until(ready, timeout_s=90), f"recsys serve did not come up; see {log}"
            yield process
        finally:
            process.terminate()
            process.wait(30)


def wait_for_version(client: RecsysClient, version: int, timeout_s: float = 5) -> float:
    """Seconds until the server behind ``client`` ranks with parameter ``version``."""
    started = time.monotonic()
    while client.recommend("version-probe", k=1).parameter_version != version:
        assert time.monotonic() - started < timeout_s, f"version {version} not in force"
        time.sleep(0.02)
    return time.monotonic() - started


def set_parameters(client: RecsysClient, **values: object) -> int:
    """Change parameters and wait until they are in force; returns the new version."""
    version = client.update_parameters(values, changed_by="tests", reason="test")["version"]
    wait_for_version(client, int(version))
    return int(version)
