"""A real platform for tests: embedded PostgreSQL, tritonserver and the gRPC server,
each on free ports under a temporary state folder."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving.bootstrap import seed_catalogue, train_demo_user_encoder
from serving.config import Settings
from serving.demo.catalogue import generate_catalogue
from serving.inference import repository, tritonserver
from serving.inference.client import TritonEncoders
from serving.store.db import PROJECT_ROOT, migrate, open_pool, start_embedded
from tests.conftest import free_port

ADMIN_TOKEN = "test-admin-token"
CATALOGUE_SIZE = 400


@dataclass
class Running:
    settings: Settings
    url: str

    @property
    def target(self) -> str:
        return self.settings.grpc_target


def wait_serving(target: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with grpc.insecure_channel(target) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
        time.sleep(0.3)
    raise TimeoutError(f"gRPC server at {target} not serving")


@contextlib.contextmanager
def grpc_server(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`recsys serve` as a child process with ``settings``; stopped with SIGTERM."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.cli", "serve"],
            env={"PATH": str(Path(sys.executable).parent), **settings.to_env()},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
        )
        try:
            wait_serving(settings.grpc_target)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_settings(state: Path, url: str, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        state_dir=state,
        database_url=url,
        grpc_port=free_port(),
        metrics_port=free_port(),
        dashboard_port=free_port(),
        triton_http_port=free_port(),
        triton_grpc_port=free_port(),
        triton_metrics_port=free_port(),
        admin_token=ADMIN_TOKEN,
        triton_timeout_ms=2000,  # a loaded CI machine must not turn answers into fallbacks
        index_refresh_s=0.5,
        impression_flush_ms=50,
    )
    return Settings(**(values | overrides))  # type: ignore[arg-type]


async def _bootstrap(settings: Settings, url: str) -> None:
    pool = await open_pool(url)
    encoders = TritonEncoders(settings.triton_grpc_url, timeout_ms=60_000)
    try:
        await seed_catalogue(pool, encoders, generate_catalogue(CATALOGUE_SIZE))
        await train_demo_user_encoder(
            pool, settings.model_repository, users=800, history_length=20, epochs=6
        )
        await encoders.load(repository.USER_ENCODER)
    finally:
        await encoders.close()
        await pool.close()


@contextlib.contextmanager
def running_platform(state: Path) -> Iterator[Running]:
    postgres = start_embedded(state)
    try:
        url = str(postgres.get_uri())
        migrate(url)
        settings = test_settings(state, url)
        repository.prepare_repository(settings.model_repository, settings.triton_instance_kind)
        with (state / "tritonserver.log").open("ab") as log:
            triton = tritonserver.start_server(settings, log)
            try:
                tritonserver.wait_ready(settings, triton)
                asyncio.run(_bootstrap(settings, url))
                with grpc_server(settings, state / "server.log"):
                    yield Running(settings, url)
            finally:
                triton.terminate()
                triton.wait(30)
    finally:
        postgres.cleanup()
