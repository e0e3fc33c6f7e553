"""Fault injection against a running ``Stack``: kill -9 tritonserver and bring it back,
stop and restart its embedded PostgreSQL. Shared by the fault tests and ``benchmarks.load``.

Each function blocks until the fault is in place (or repaired) and returns the moment
(``time.monotonic()``) that happened, so callers can time recovery from it.
"""

from __future__ import annotations

import signal
import time
from urllib.parse import parse_qs, urlsplit

from serving.adapters.postgres.db import pg_ctl
from serving.adapters.triton import tritonserver
from serving.stack import Child, Stack


def _child(stack: Stack, name: str) -> Child:
    for child in stack.children:
        if child.name == name:
            return child
    raise LookupError(f"the stack runs no {name}")


def kill_triton(stack: Stack) -> float:
    """SIGKILL tritonserver (no clean shutdown) and wait until it is gone."""
    process = _child(stack, "tritonserver").process
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    return time.monotonic()


def start_triton(stack: Stack) -> float:
    """Start tritonserver again on the same ports and models; returns once it is ready.

    The new process replaces the old one among the stack's children, so ``stack.stop()``
    stops it.
    """
    child = _child(stack, "tritonserver")
    with child.log_path.open("ab") as log:
        process = tritonserver.start_server(stack.settings, log)
    stack.children[stack.children.index(child)] = Child(child.name, process, child.log_path)
    tritonserver.wait_ready(stack.settings, process)
    return time.monotonic()


def stop_postgres(stack: Stack) -> float:
    """Stop the stack's embedded PostgreSQL in fast mode (open sessions are cut)."""
    pg_ctl(stack.settings.state_dir / "postgres", "-w", "-m", "fast", "stop")
    return time.monotonic()


def start_postgres(stack: Stack) -> float:
    """Start it again with the same socket folder, so the database URL still works."""
    assert stack.settings.database_url is not None
    url = stack.settings.database_url.get_secret_value()
    socket_dir = parse_qs(urlsplit(url).query)["host"][0]
    pgdata = stack.settings.state_dir / "postgres"
    pg_ctl(
        pgdata, "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start"
    )
    return time.monotonic()
