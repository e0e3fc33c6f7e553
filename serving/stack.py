"""`recsys up`: the whole platform on one machine, supervised.

Order: PostgreSQL (embedded unless RECSYS_DATABASE_URL is set) -> migrations ->
tritonserver -> demo catalogue and first user encoder (first run only) -> gRPC
server -> traffic simulator -> dashboard. SIGINT/SIGTERM stop them in reverse
order; children also die with the supervisor (PR_SET_PDEATHSIG), so none is orphaned.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import SecretStr
from rich.console import Console
from rich.progress import Progress

from serving.adapters.postgres.db import (
    PROJECT_ROOT,
    migrate,
    open_pool,
    start_embedded,
    stop_embedded,
)
from serving.adapters.triton import repository, tritonserver
from serving.adapters.triton.client import TritonEncoders
from serving.config import Settings

log = logging.getLogger(__name__)
console = Console(soft_wrap=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the supervisor dies, however it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PORT_SETTINGS = (
    "grpc_port",
    "metrics_port",
    "dashboard_port",
    "triton_http_port",
    "triton_grpc_port",
    "triton_metrics_port",
)


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def side_by_side_settings(state_dir: Path, **overrides: Any) -> Settings:
    """Settings for a stack that runs beside others: its own state folder, free ports."""
    ports = {name: free_port() for name in PORT_SETTINGS}
    return Settings(**({"state_dir": state_dir} | ports | overrides))


def wait_until(ready: Callable[[], bool], timeout_s: float, poll_s: float = 0.3) -> bool:
    """Poll ``ready`` until it is true (returns True) or the timeout passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(poll_s)
    return False


def grpc_ready(target: str) -> bool:
    """Whether the gRPC server at ``target`` reports SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path


class Stack:
    def __init__(
        self,
        settings: Settings,
        *,
        simulate: bool = True,
        dashboard: bool = True,
        demo: bool = True,
    ) -> None:
        # Children run from the project root: give them an absolute state folder.
        self.settings = settings.model_copy(update={"state_dir": settings.state_dir.resolve()})
        self.simulate = simulate
        self.demo = demo  # seed the demo catalogue and model on first start
        self.dashboard = dashboard
        self.children: list[Child] = []
        self.logs = self.settings.state_dir / "logs"
        self._exit = ExitStack()
        self._stopping = False
        self._embedded_postgres = False

    # -- start-up ---------------------------------------------------------------------
    def start(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        url = self._database()
        console.print("[bold]migrations[/] alembic upgrade head")
        migrate(url)
        repository.prepare_repository(
            self.settings.model_repository,
            self.settings.triton_instance_kind,
            self.settings.content_model,
        )
        self.settings = self.settings.model_copy(update={"database_url": SecretStr(url)})
        if self.settings.start_triton:
            self._start_triton()
        if self.demo:
            asyncio.run(self._bootstrap(url))
        self._spawn("server", [sys.executable, "-m", "serving.cli", "serve"])
        self._wait_for("gRPC server", lambda: grpc_ready(self.settings.grpc_target))
        if self.simulate:
            self._spawn("simulator", [sys.executable, "-m", "serving.cli", "simulate"])
        if self.dashboard:
            self._spawn("dashboard", self._dashboard_command())
            self._wait_for("dashboard", self._dashboard_ready)
        self._print_summary(url)

    def _database(self) -> str:
        if self.settings.database_url is not None:
            console.print("[bold]PostgreSQL[/] using RECSYS_DATABASE_URL")
            return self.settings.database_url.get_secret_value()
        console.print(
            f"[bold]PostgreSQL[/] embedded, data in {self.settings.state_dir / 'postgres'}"
        )
        server = start_embedded(self.settings.state_dir)
        self._exit.callback(server.cleanup)
        self._embedded_postgres = True
        return str(server.get_uri())

    def _start_triton(self) -> None:
        console.print("[bold]Triton[/] starting tritonserver (loading MiniLM takes a moment)")
        log_file = self._log_file("tritonserver")
        process = tritonserver.start_server(self.settings, log_file, preexec_fn=_die_with_parent)
        self.children.append(Child("tritonserver", process, self.logs / "tritonserver.log"))
        tritonserver.wait_ready(self.settings, process)

    async def _bootstrap(self, url: str) -> None:
        from serving.bootstrap import DEMO_EPOCHS, seed_catalogue, train_demo_user_encoder
        from serving.demo.catalogue import generate_catalogue

        pool = await open_pool(url)
        encoders = TritonEncoders(self.settings.triton_grpc_url, timeout_ms=60_000)
        try:
            items = generate_catalogue(self.settings.demo_items)
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("embedding the demo catalogue", total=len(items))
                seeded = await seed_catalogue(
                    pool, encoders, items, lambda n: progress.advance(task, n)
                )
            if seeded:
                console.print(f"[bold]catalogue[/] seeded {seeded} demo items")
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("training the demo user encoder", total=DEMO_EPOCHS)
                version = await train_demo_user_encoder(
                    pool,
                    self.settings.model_repository,
                    load_into=encoders if self.settings.start_triton else None,
                    on_epoch=lambda epoch, loss: progress.update(task, completed=epoch),
                )
            if version is not None:
                console.print(f"[bold]model[/] trained and exported user_encoder v{version}")
        finally:
            await encoders.close()
            await pool.close()

    def _dashboard_command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(PROJECT_ROOT / "dashboard" / "app.py"),
            "--server.port",
            str(self.settings.dashboard_port),
            "--server.address",
            self.settings.grpc_host,
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ]

    def _log_file(self, name: str) -> IO[bytes]:
        return self._exit.enter_context((self.logs / f"{name}.log").open("ab"))

    def _spawn(self, name: str, command: list[str]) -> None:
        """Start a child with this stack's settings (children read them from RECSYS_*)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
        process = subprocess.Popen(
            command,
            env=env | self.settings.to_env(),
            stdout=self._log_file(name),
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            preexec_fn=_die_with_parent,
        )
        self.children.append(Child(name, process, self.logs / f"{name}.log"))

    def _wait_for(self, what: str, ready: Callable[[], bool], timeout_s: float = 120) -> None:
        def check() -> bool:
            self._check_children()
            return ready()

        if not wait_until(check, timeout_s):
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s; see {self.logs}")

    def _dashboard_ready(self) -> bool:
        url = f"http://{self._host()}:{self.settings.dashboard_port}/_stcore/health"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _host(self) -> str:
        return self.settings.grpc_target.rsplit(":", 1)[0]

    def _print_summary(self, url: str) -> None:
        s, host = self.settings, self._host()
        lines = [
            f"  gRPC API     {s.grpc_target}   (grpcurl -plaintext {s.grpc_target} list)",
            f"  metrics      http://{host}:{s.metrics_port}/metrics" if s.metrics_port else "",
            f"  dashboard    http://{host}:{s.dashboard_port}" if self.dashboard else "",
            f"  Triton       http {s.triton_host}:{s.triton_http_port}  grpc :{s.triton_grpc_port}"
            f"  metrics :{s.triton_metrics_port}"
            if s.start_triton
            else "",
            "  PostgreSQL   " + url,
            f"  simulator    {s.simulate_rate:g} Recommend/s" if self.simulate else "",
            f"  logs         {self.logs}/",
        ]
        console.print("\n[bold green]recsys is up[/]\n" + "\n".join(x for x in lines if x))
        console.print("Ctrl-C stops everything.\n")

    # -- supervision ------------------------------------------------------------------
    def _check_children(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is None or self._stopping:
                continue
            if code in (-signal.SIGINT, 128 + signal.SIGINT):
                # Ctrl-C reaches the whole process group: a child that handled it before
                # this process did is the same request to stop, not a failure.
                raise KeyboardInterrupt
            raise RuntimeError(f"{child.name} exited with code {code}; see {child.log_path}")

    def wait(self) -> None:
        """Block until SIGINT/SIGTERM or until a child dies."""
        stop = {"signal": False}

        def request_stop(signum: int, _: Any) -> None:
            stop["signal"] = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        while not stop["signal"]:
            try:
                self._check_children()
            except RuntimeError:
                # A child that stopped on the same Ctrl-C is no failure; this process's own
                # signal handler may run a moment after that child's exit is seen.
                time.sleep(0.5)
                if not stop["signal"]:
                    raise
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop children newest first (SIGTERM, then SIGKILL after a grace), then Postgres."""
        self._stopping = True
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
                try:
                    child.process.wait(self.settings.shutdown_grace_s + 5)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()
            console.print(f"stopped {child.name}")
        self._exit.close()
        if self._embedded_postgres:
            stop_embedded(self.settings.state_dir)
            console.print("stopped PostgreSQL")


def run_stack(settings: Settings, **options: bool) -> int:
    """`recsys up`: start, wait, stop; the exit code says whether it ended cleanly."""
    stack = Stack(settings, **options)
    code = 0
    try:
        stack.start()
        stack.wait()
    except KeyboardInterrupt:
        pass
    except Exception as error:
        console.print(f"[bold red]error:[/] {error}")
        code = 1
    finally:
        # A second Ctrl-C during shutdown must not leave children behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
    return code
