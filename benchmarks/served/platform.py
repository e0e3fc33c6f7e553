"""The platform as a user runs it: `recsys up --no-demo` and the other `recsys` commands,
each a child process with this run's settings (its own state folder and free ports)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from serving.adapters.postgres.db import PROJECT_ROOT
from serving.config import Settings
from serving.stack import grpc_ready, wait_until

UP = ["up", "--no-demo", "--no-dashboard"]
START_TIMEOUT_S = 600
STOP_TIMEOUT_S = 120
URL_LINE = re.compile(r"^\s*PostgreSQL\s+(postgresql://\S+)", re.MULTILINE)
EXPORTED = re.compile(r"exported user_encoder v(\d+)")


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """This process's environment without its RECSYS_* variables, plus ``settings``'."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    return env | settings.to_env() | extra


def recsys(settings: Settings, log: Path, *args: str, **extra_env: str) -> None:
    """Run one `recsys` command to completion (its output appended to ``log``)."""
    with log.open("ab") as out:
        out.write(f"\n$ recsys {' '.join(args)}\n".encode())
        out.flush()
        done = subprocess.run(
            [sys.executable, "-m", "serving.cli", *args],
            env=environment(settings, **extra_env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            check=False,
        )
    if done.returncode:
        raise RuntimeError(f"recsys {args[0]} exited with {done.returncode}; see {log}")


def export(settings: Settings, log: Path, run: Path, database_url: str) -> int:
    """`recsys export --run RUN` into the running platform; the version it published."""
    recsys(settings, log, "export", "--run", str(run), RECSYS_DATABASE_URL=database_url)
    return int(EXPORTED.findall(log.read_text())[-1])


class Platform:
    """`recsys up --no-demo --no-dashboard` for the duration of a ``with`` block."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.database_url = ""

    def __enter__(self) -> Platform:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "serving.cli", *UP],
                env=environment(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=PROJECT_ROOT,
            )
        try:
            if not wait_until(self._up, START_TIMEOUT_S, poll_s=1.0):
                raise TimeoutError(f"recsys up not ready after {START_TIMEOUT_S}s; see {self.log}")
        except BaseException:
            self.stop()
            raise
        return self

    def _up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"recsys up exited with {self.process.returncode}; see {self.log}")
        found = URL_LINE.search(self.log.read_text(errors="replace"))
        if found is None or not grpc_ready(self.settings.grpc_target):
            return False
        self.database_url = found.group(1)
        return True

    def stop(self) -> None:
        """SIGTERM (the stack stops its children in order), SIGKILL after a grace."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def elapsed(started: float) -> str:
    return f"{time.perf_counter() - started:.0f}s"
