"""`recsys up` (what `make run` starts) as a new user runs it: everything comes up,
serves, shows live numbers; Ctrl-C stops it all; a second start reuses the data."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

import psutil
import psycopg
import pytest

from serving.adapters.postgres.db import PROJECT_ROOT
from serving.client import RecsysClient
from tests.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class Output:
    """Collects a process's output on a thread, so reading never blocks the test."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.text = ""
        assert process.stdout is not None
        threading.Thread(target=self._pump, args=(process.stdout,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)

    def read_until(self, marker: str, timeout_s: float) -> str:
        """Everything printed so far, once a line with ``marker`` has been printed."""
        deadline = time.monotonic() + timeout_s
        while marker not in self.text:
            try:
                self.text += self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} within {timeout_s}s:\n{self.text}") from None
        return self.text

    def rest(self) -> str:
        while not self.lines.empty():
            self.text += self.lines.get()
        return self.text


def start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "up"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group, so "Ctrl-C" reaches only this stack
    )


def ctrl_c(process: subprocess.Popen[str], output: Output) -> str:
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=90)
    time.sleep(0.5)  # let the reader thread drain the pipe
    return output.rest()


def wait_for(check, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_up_runs_everything_and_stops_cleanly(tmp_path: Path):
    ports = {
        name: free_port()
        for name in (
            "GRPC_PORT",
            "METRICS_PORT",
            "DASHBOARD_PORT",
            "TRITON_HTTP_PORT",
            "TRITON_GRPC_PORT",
            "TRITON_METRICS_PORT",
        )
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env |= {f"RECSYS_{k}": str(v) for k, v in ports.items()}
    env |= {
        "RECSYS_STATE_DIR": str(tmp_path / "state"),
        "RECSYS_DEMO_ITEMS": "300",
        "RECSYS_SIMULATE_RATE": "10",
    }

    process = start(env)
    printed = Output(process)
    try:
        output = printed.read_until("Ctrl-C stops everything", 600)
        assert "seeded 300 demo items" in output
        assert "exported user_encoder v1" in output
        for port in ports.values():
            assert str(port) in output
        url = re.search(r"PostgreSQL\s+(postgresql://\S+)", output).group(1)
        descendants = psutil.Process(process.pid).children(recursive=True)
        assert {"tritonserver"} <= {p.name() for p in descendants}

        with RecsysClient(f"127.0.0.1:{ports['GRPC_PORT']}") as client:
            rec = client.recommend("e2e-user", k=5)
            assert len(rec.items) == 5 and not rec.degraded
        page = f"http://127.0.0.1:{ports['DASHBOARD_PORT']}/_stcore/health"
        with urllib.request.urlopen(page, timeout=5) as response:
            assert response.status == 200

        def simulated_traffic() -> bool:
            with psycopg.connect(url) as conn:
                count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            return count > 0

        wait_for(simulated_traffic)
    finally:
        output = ctrl_c(process, printed) if process.poll() is None else printed.rest()
    assert process.returncode == 0, output
    assert "stopped PostgreSQL" in output
    time.sleep(1)
    left = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"orphans: {left}"
    assert not any(
        str(tmp_path) in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])
    ), "a process of the stack outlived it"

    # A second start reuses the catalogue and the model.
    process = start(env)
    printed = Output(process)
    try:
        output = printed.read_until("Ctrl-C stops everything", 300)
        assert "seeded" not in output and "exported" not in output
    finally:
        output = ctrl_c(process, printed)
    assert process.returncode == 0, output
