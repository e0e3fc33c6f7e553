"""`recsys serve` with two workers on the platform's PostgreSQL and Triton: both bind the
one gRPC port, connections are spread over them (each worker's /metrics counts its own
Recommends), SIGTERM stops both cleanly, and a worker that dies takes the other down
with a non-zero exit (for the supervisor to restart the whole)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import grpc
import pytest

from serving.client import RecsysClient
from serving.stack import free_port, wait_until
from tests.integration.platform import Running, grpc_server

pytestmark = pytest.mark.integration

CONNECTIONS = 16


def _two_free_ports() -> int:
    """A port p with p + 1 free as well (the workers' metrics ports)."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def _workers(supervisor: subprocess.Popen[bytes]) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text()
    return [
        int(pid)
        for pid in children.split()
        if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def _recommends(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
    counts = re.findall(
        rb'recsys_grpc_requests_total\{code="OK",method="Recommend"\} ([0-9.e+]+)', text
    )
    return sum(float(c) for c in counts)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def _settings(platform: Running) -> object:
    return platform.settings.model_copy(
        update={"grpc_port": free_port(), "metrics_port": _two_free_ports(), "workers": 2}
    )


def test_two_workers_share_the_port_and_stop_together(platform: Running, tmp_path: Path) -> None:
    settings = _settings(platform)
    log = tmp_path / "workers.log"
    with grpc_server(settings, log) as supervisor:  # type: ignore[arg-type]
        assert wait_until(lambda: log.read_text().count("gRPC on") == 2, 60), log.read_text()
        assert "[worker 0]" in log.read_text() and "[worker 1]" in log.read_text()
        workers = _workers(supervisor)
        assert len(workers) == 2
        for n in range(CONNECTIONS):  # a connection of its own each: the kernel spreads them
            channel = grpc.insecure_channel(
                settings.grpc_target, options=[("grpc.use_local_subchannel_pool", 1)]
            )
            with RecsysClient(settings.grpc_target, channel=channel, retries=0) as client:
                assert client.recommend(f"worker-probe-{n}", k=3).item_ids
        per_worker = [_recommends(settings.metrics_port + n) for n in range(2)]
        assert sum(per_worker) >= CONNECTIONS and min(per_worker) > 0, per_worker

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0, log.read_text()
        assert not any(_alive(pid) for pid in workers)


def test_a_worker_that_dies_takes_the_others_down(platform: Running, tmp_path: Path) -> None:
    log = tmp_path / "workers.log"
    with grpc_server(_settings(platform), log) as supervisor:  # type: ignore[arg-type]
        assert wait_until(lambda: log.read_text().count("gRPC on") == 2, 60), log.read_text()
        first, second = _workers(supervisor)
        os.kill(first, signal.SIGKILL)
        assert supervisor.wait(30) == 1, log.read_text()
        assert "a worker exited" in log.read_text()
        assert not _alive(second)
