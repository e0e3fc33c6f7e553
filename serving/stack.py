"""`recsys up`: the whole platform on one machine, supervised.

Order: PostgreSQL (embedded unless RECSYS_DATABASE_URL is set) -> migrations ->
tritonserver -> demo catalogue and first user encoder (first run only) -> gRPC
server -> traffic simulator -> dashboard. SIGINT/SIGTERM stop them in reverse
order; children also die with the supervisor (PR_SET_PDEATHSIG), so none is orphaned.

Signals: the handlers are installed before anything starts, overriding a SIGINT that
was ignored when this process started (a background job of a non-interactive shell, as
CI launchers run it, inherits "ignore", and Python then installs no KeyboardInterrupt).
A signal during start-up interrupts it; one afterwards ends ``wait``; either way every
part started so far is stopped, embedded PostgreSQL included. Children that exit after a
stop was requested (Ctrl-C reaches the whole process group) are part of a clean stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
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
from serving.lifetime import die_with_parent

log = logging.getLogger(__name__)
console = Console(soft_wrap=True)


PORT_SETTINGS = (
    "grpc_port",
    "metrics_port",
    "dashboard_port",
    "triton_http_port",
    "triton_grpc_port",
    "triton_metrics_port",
)


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it), never one handed out before.

    The OS may offer a port it offered a moment ago, since the probe socket is closed at
    once; two settings of one stack (or two stacks of one test run) must not share it.
    """
    with _handed_out_lock:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port


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


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
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


class StopRequested(KeyboardInterrupt):
    """SIGINT or SIGTERM asked the stack to stop (raised to interrupt start-up).

    A KeyboardInterrupt so that code written for Ctrl-C (asyncio.run cancelling its tasks,
    ``contextlib.suppress(KeyboardInterrupt)``) treats it the same way.
    """


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long a child's unexpected exit waits for this process's own stop signal: the same
# Ctrl-C reaches every process of the group, and under load a child can handle it and
# exit before this process's Python-level handler has run.
SIBLING_SIGNAL_GRACE_S = 3.0


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
        self.stop_requested = False
        # Whether the signal handler may raise StopRequested where the main thread is.
        # False while a child or PostgreSQL is being started (so none is started without
        # being recorded for ``stop``), during ``wait`` (it polls the flag) and ``stop``.
        self._interruptible = False

    # -- signals ----------------------------------------------------------------------
    def install_signal_handlers(self) -> dict[int, Any]:
        """Handle SIGINT and SIGTERM from now on (an inherited SIG_IGN included); returns
        the previous handlers. Call before anything is started."""
        previous: dict[int, Any] = {}
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, _frame: Any) -> None:
        first = not self.stop_requested
        self.stop_requested = True
        if first:
            console.print(f"{signal.Signals(signum).name}: stopping")
            if self._interruptible:
                raise StopRequested

    @contextmanager
    def _deferring_stop(self) -> Iterator[None]:
        """Run a step that starts something to its end; a stop asked for meanwhile is
        raised right after, once what it started is recorded."""
        was = self._interruptible
        self._interruptible = False
        try:
            yield
        finally:
            self._interruptible = was
        if self.stop_requested and was:
            raise StopRequested

    # -- start-up ---------------------------------------------------------------------
    def start(self) -> None:
        """Start every part in order; StopRequested if a signal comes meanwhile."""
        self._interruptible = True
        try:
            self._start()
        finally:
            self._interruptible = False

    def _start(self) -> None:
        if self.stop_requested:
            raise StopRequested
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
        # The server listens once it holds the whole catalogue (about two minutes per
        # million items here); a server that dies meanwhile is noticed at once.
        self._wait_for("gRPC server", lambda: grpc_ready(self.settings.grpc_target), 1800)
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
        with self._deferring_stop():
            # Set first: ``stop`` stops whatever server the data folder names, so one that
            # was starting when a signal came is stopped too.
            self._embedded_postgres = True
            server = start_embedded(self.settings.state_dir)
            self._exit.callback(server.cleanup)
        return str(server.get_uri())

    def _start_triton(self) -> None:
        console.print("[bold]Triton[/] starting tritonserver (loading MiniLM takes a moment)")
        with self._deferring_stop():
            log_file = self._log_file("tritonserver")
            process = tritonserver.start_server(self.settings, log_file, preexec_fn=die_with_parent)
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
        with self._deferring_stop():
            process = subprocess.Popen(
                command,
                env=env | self.settings.to_env(),
                stdout=self._log_file(name),
                stderr=subprocess.STDOUT,
                cwd=PROJECT_ROOT,
                preexec_fn=die_with_parent,
            )
            self.children.append(Child(name, process, self.logs / f"{name}.log"))

    def _wait_for(self, what: str, ready: Callable[[], bool], timeout_s: float = 120) -> None:
        def check() -> bool:
            self._check_children()
            return ready()

        if not wait_until(check, timeout_s):
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s; see {self.logs}")

    def _dashboard_ready(self) -> bool:
        return http_ok(f"http://{self._host()}:{self.settings.dashboard_port}/_stcore/health")

    def _host(self) -> str:
        return self.settings.grpc_target.rsplit(":", 1)[0]

    def _print_summary(self, url: str) -> None:
        s, host = self.settings, self._host()
        lines = [
            f"  gRPC API     {s.grpc_target}   (grpcurl -plaintext {s.grpc_target} list)",
            f"  metrics      http://{host}:{s.metrics_port}/metrics"
            + (f" (worker i of {s.workers}: port + i)" if s.workers > 1 else "")
            if s.metrics_port
            else "",
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
        """Raise if a child has exited on its own: StopRequested when a stop was asked for
        (then its exit is part of the stop), RuntimeError when not."""
        for child in self.children:
            code = child.process.poll()
            if code is None or self._stopping:
                continue
            if not self.stop_requested:
                # The same Ctrl-C may have reached that child first: give this process's
                # own handler the time to run before calling the exit a failure.
                wait_until(lambda: self.stop_requested, SIBLING_SIGNAL_GRACE_S, poll_s=0.1)
            if self.stop_requested:
                raise StopRequested
            raise RuntimeError(f"{child.name} exited with code {code}; see {child.log_path}")

    def wait(self) -> None:
        """Block until SIGINT/SIGTERM (returns) or until a child dies (raises RuntimeError)."""
        while not self.stop_requested:
            try:
                self._check_children()
            except StopRequested:
                return
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
    """`recsys up`: start, wait, stop; the exit code says whether it ended cleanly.

    0 when a signal stopped it (whenever it came), 1 when a part failed. No
    KeyboardInterrupt escapes (Click would turn it into "Aborted!" and exit code 1).
    """
    stack = Stack(settings, **options)
    previous = stack.install_signal_handlers()
    code = 0
    try:
        stack.start()
        stack.wait()
    except KeyboardInterrupt:
        pass
    except Exception as error:
        if stack.stop_requested:
            # e.g. Triton stopping on the group's Ctrl-C while start-up waited for it.
            log.info("start-up ended by the stop request: %s", error)
        else:
            console.print(f"[bold red]error:[/] {error}")
            code = 1
    finally:
        # Further signals during shutdown only set the flag again: every child is stopped.
        stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code
