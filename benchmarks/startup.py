"""Orchestrator start-up time and memory: ``recsys serve`` from spawn until gRPC health
answers SERVING, and its RSS one second later, against one embedded PostgreSQL (migrated,
empty catalogue) with no Triton reachable; runs interleaved, medians printed.

    python -m benchmarks.startup NAME=PYTHON[:PYTHONPATH] ... [--runs 3]

Each variant is an interpreter (a venv's ``bin/python``) and optionally a PYTHONPATH, e.g.
a worktree of an older commit: ``before=.venv/bin/python:/tmp/old:/tmp/old/build/proto``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving.adapters.postgres.db import migrate, start_embedded
from serving.stack import free_port

SERVE = "from serving.cli import app; app()"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start_once(url: str, python: str, pythonpath: str | None) -> tuple[float, float]:
    """Seconds until SERVING, and the RSS in MiB once serving."""
    port = free_port()
    env = dict(os.environ, RECSYS_DATABASE_URL=url, RECSYS_GRPC_PORT=str(port))
    env |= {"RECSYS_METRICS_PORT": "0", "RECSYS_TRITON_GRPC_PORT": str(free_port())}
    env |= {"RECSYS_START_TRITON": "false", "RECSYS_LOG_LEVEL": "WARNING"}
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    started = time.perf_counter()
    process = subprocess.Popen(
        [os.path.abspath(python), "-c", SERVE, "serve"],
        env=env,
        cwd=tempfile.gettempdir(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            if process.poll() is not None:
                assert process.stderr is not None
                raise RuntimeError(process.stderr.read().decode())
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        time.sleep(1.0)
        rss = _rss_mib(process.pid)
    process.terminate()
    process.wait(30)
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="NAME=PYTHON[:PYTHONPATH]")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("command:", " ".join(["python -m benchmarks.startup", *sys.argv[1:]]))
    with tempfile.TemporaryDirectory(prefix="recsys-startup-") as state:
        server = start_embedded(Path(state))
        url = server.get_uri()
        migrate(url)
        results: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.runs):
            for variant in args.variants:
                name, _, spec = variant.partition("=")
                python, _, path = spec.partition(":")
                results.setdefault(name, []).append(start_once(url, python, path or None))
        server.cleanup()
    for name, rows in results.items():
        times = [t for t, _ in rows]
        print(
            f"{name}: start-up {statistics.median(times):.2f} s median"
            f" (runs {', '.join(f'{t:.2f}' for t in times)}),"
            f" RSS {statistics.median(r for _, r in rows):.0f} MiB median"
        )


if __name__ == "__main__":
    main()
