"""`recsys up` (what `make run` starts) as a new user runs it: everything comes up,
serves, shows live numbers; Ctrl-C stops it all, whenever it comes and however the stack
was launched (a background job of a non-interactive shell starts it with SIGINT ignored,
as CI launchers may); a second start reuses the data and serves."""

from __future__ import annotations

import functools
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

import psutil
import psycopg
import pytest

from serving.adapters.postgres.db import PROJECT_ROOT
from serving.client import RecsysClient
from serving.stack import http_ok
from tests.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

READY_LINE = "Ctrl-C stops everything"
PORT_NAMES = (
    "GRPC_PORT",
    "METRICS_PORT",
    "DASHBOARD_PORT",
    "TRITON_HTTP_PORT",
    "TRITON_GRPC_PORT",
    "TRITON_METRICS_PORT",
)


class Output:
    """Collects a process's output on a thread, so reading never blocks the test."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.text = ""
        assert process.stdout is not None
        self._reader = threading.Thread(target=self._pump, args=(process.stdout,), daemon=True)
        self._reader.start()

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

    def rest(self, timeout_s: float = 10) -> str:
        """Everything printed, once the pipe has been read to its end (or the timeout)."""
        self._reader.join(timeout_s)
        while not self.lines.empty():
            self.text += self.lines.get()
        return self.text


def stack_env(state_dir: Path) -> tuple[dict[str, str], dict[str, int]]:
    ports = {name: free_port() for name in PORT_NAMES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env |= {f"RECSYS_{k}": str(v) for k, v in ports.items()}
    env |= {
        "RECSYS_STATE_DIR": str(state_dir),
        "RECSYS_DEMO_ITEMS": "300",
        "RECSYS_SIMULATE_RATE": "10",
    }
    return env, ports


def start(env: dict[str, str], *, sigint: signal.Handlers) -> subprocess.Popen[str]:
    """`recsys up` in its own session (so "Ctrl-C" reaches only this stack), with SIGINT
    set to ``sigint`` when it starts: SIG_DFL as from a terminal, SIG_IGN as a background
    job of a non-interactive shell (whatever this test process itself inherited)."""
    return subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "up"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, sigint),
    )


def stop_with(process: subprocess.Popen[str], output: Output, signum: int, *, group: bool) -> str:
    """Send ``signum`` to the stack's process group (Ctrl-C in a terminal) or to the
    supervisor alone (`kill PID`), and return all it printed once it has exited."""
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"still running 120s after {signum!r}:\n{output.rest()}") from None
    return output.rest()


def stack_processes(state_dir: Path) -> list[psutil.Process]:
    """Every live process of the stack of ``state_dir``, wherever it sits in the process
    tree: its command line or environment names the folder (children, Triton's backend
    stubs, and embedded PostgreSQL, which pg_ctl starts in a session of its own)."""
    found = []
    for process in psutil.process_iter(["cmdline", "environ", "status"]):
        info = process.info
        if info["status"] == psutil.STATUS_ZOMBIE or process.pid == os.getpid():
            continue
        environ = info["environ"] or {}
        text = " ".join(info["cmdline"] or []) + " " + environ.get("RECSYS_STATE_DIR", "")
        if str(state_dir) in text:
            found.append(process)
    return found


def postmaster_pid(state_dir: Path) -> int | None:
    pid_file = state_dir / "postgres" / "postmaster.pid"
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def assert_nothing_left(state_dir: Path, output: str, seen: list[psutil.Process]) -> None:
    """No process of the stack outlives it (checked until a generous bound)."""

    def gone() -> bool:
        alive = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        return not alive and not stack_processes(state_dir) and postmaster_pid(state_dir) is None

    wait_for(gone, 30, lambda: f"left: {stack_processes(state_dir)}\n{output}")


def wait_for(check: Callable[[], bool], timeout_s: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what()
        time.sleep(0.3)


def descendants(process: subprocess.Popen[str]) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def assert_serves(ports: dict[str, int], url: str) -> None:
    """A real Recommend answered by the model, with items of the seeded catalogue."""
    with RecsysClient(f"127.0.0.1:{ports['GRPC_PORT']}") as client:
        rec = client.recommend("e2e-user", k=5)
    assert len(rec.items) == 5 and not rec.degraded
    with psycopg.connect(url) as conn:
        known = {
            row[0]
            for row in conn.execute(
                "SELECT item_id FROM items WHERE item_id = ANY(%s)",
                ([item.item_id for item in rec.items],),
            )
        }
    assert known == {item.item_id for item in rec.items}


# Three starts, the first from nothing (it embeds the catalogue and trains the demo model):
# more than the suite's 600 s per test on a busy 2-core machine.
@pytest.mark.timeout(1800)
def test_up_runs_everything_and_stops_cleanly(tmp_path: Path):
    state = tmp_path / "state"
    env, ports = stack_env(state)

    process = start(env, sigint=signal.SIG_DFL)
    printed = Output(process)
    seen: list[psutil.Process] = []
    try:
        output = printed.read_until(READY_LINE, 1200)
        assert "seeded 300 demo items" in output
        assert "exported user_encoder v1" in output
        for port in ports.values():
            assert str(port) in output
        url = re.search(r"PostgreSQL\s+(postgresql://\S+)", output).group(1)
        seen = descendants(process)
        assert {"tritonserver"} <= {p.name() for p in seen}
        assert postmaster_pid(state) is not None

        assert_serves(ports, url)
        page = f"http://127.0.0.1:{ports['DASHBOARD_PORT']}/_stcore/health"
        with urllib.request.urlopen(page, timeout=5) as response:
            assert response.status == 200

        def simulated_traffic() -> bool:
            with psycopg.connect(url) as conn:
                count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            return count > 0

        wait_for(simulated_traffic, 60, lambda: "the simulator logged no event in 60s")
    finally:
        output = stop_with(process, printed, signal.SIGINT, group=True)
    assert process.returncode == 0, output
    assert "stopped PostgreSQL" in output
    assert_nothing_left(state, output, seen)

    # A second start, launched with SIGINT ignored, reuses the catalogue and the model
    # and serves; Ctrl-C still stops it.
    process = start(env, sigint=signal.SIG_IGN)
    printed = Output(process)
    try:
        output = printed.read_until(READY_LINE, 300)
        assert "seeded" not in output and "exported" not in output
        seen = descendants(process)
        assert_serves(ports, url)
    finally:
        output = stop_with(process, printed, signal.SIGINT, group=True)
    assert process.returncode == 0, output
    assert_nothing_left(state, output, seen)

    # A third, SIGINT ignored again, and Ctrl-C the moment it says Ctrl-C stops it.
    process = start(env, sigint=signal.SIG_IGN)
    printed = Output(process)
    try:
        printed.read_until(READY_LINE, 300)
        seen = descendants(process)
    finally:
        output = stop_with(process, printed, signal.SIGINT, group=True)
    assert process.returncode == 0, output
    assert_nothing_left(state, output, seen)


def triton_ready(ports: dict[str, int]) -> bool:
    return http_ok(f"http://127.0.0.1:{ports['TRITON_HTTP_PORT']}/v2/health/ready")


@pytest.mark.parametrize(
    ("inherited", "signum", "group", "moment"),
    [
        (signal.SIG_IGN, signal.SIGINT, True, "triton loading"),
        (signal.SIG_DFL, signal.SIGINT, True, "triton loading"),
        (signal.SIG_IGN, signal.SIGTERM, False, "triton loading"),
        (signal.SIG_IGN, signal.SIGINT, True, "demo bootstrap"),
    ],
    ids=[
        "ctrl-c-sigint-ignored-triton-loading",
        "ctrl-c-triton-loading",
        "sigterm-triton-loading",
        "ctrl-c-sigint-ignored-demo-bootstrap",
    ],
)
def test_a_signal_during_start_up_stops_everything(
    tmp_path: Path, inherited: signal.Handlers, signum: int, group: bool, moment: str
):
    state = tmp_path / "state"
    env, ports = stack_env(state)
    process = start(env, sigint=inherited)
    printed = Output(process)
    seen: list[psutil.Process] = []
    try:
        printed.read_until("starting tritonserver", 300)

        def triton_running() -> bool:
            seen[:] = descendants(process)
            return "tritonserver" in {p.name() for p in seen}

        wait_for(triton_running, 60, printed.rest)
        if moment == "demo bootstrap":
            # Triton is up: the stack is embedding the catalogue or training the model.
            wait_for(lambda: triton_ready(ports), 180, printed.rest)
        assert process.poll() is None, printed.rest()
        assert READY_LINE not in printed.text
        assert postmaster_pid(state) is not None
    finally:
        output = stop_with(process, printed, signum, group=group)
    assert process.returncode == 0, output
    assert "Aborted" not in output and "Traceback" not in output, output
    assert_nothing_left(state, output, seen)
