"""Where a benchmark's CPU goes: CPU seconds of the stack's processes by role, and how
many user histories Triton's user encoder ran per execution (its batching).

Read from /proc and Triton's statistics before and after a run, so a figure is CPU per
call of that run: less noisy than throughput on a shared machine, and it says which
process a change relieved.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections import defaultdict
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def role(pid: int, orchestrators: set[int]) -> str | None:
    """What a process is in the stack (None: not the stack's)."""
    if pid in orchestrators:
        return "orchestrator"
    if pid == os.getpid():
        return "load generator"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return None
    if b"triton_python_backend_stub" in command:
        return "user-encoder stub" if b"/user_encoder/" in command else "content-encoder stub"
    if b"/tritonserver " in command:
        return "tritonserver"
    if command.startswith(b"postgres") or b"/bin/postgres " in command:
        return "PostgreSQL"
    return None


def cpu_seconds(orchestrators: set[int]) -> defaultdict[str, float]:
    """User + system CPU seconds so far of every process of the stack, by role."""
    seconds: defaultdict[str, float] = defaultdict(float)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        name = role(int(entry.name), orchestrators)
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        if name is not None:
            seconds[name] += (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    return seconds


def user_encoder_runs(http_port: int) -> tuple[int, int]:
    """Triton's counts for the user encoder (every version): histories encoded, and
    model executions they took."""
    url = f"http://127.0.0.1:{http_port}/v2/models/user_encoder/stats"
    with urllib.request.urlopen(url, timeout=5) as answer:
        stats = json.load(answer)["model_stats"]
    return (
        sum(int(s["inference_count"]) for s in stats),
        sum(int(s["execution_count"]) for s in stats),
    )


class Accounting:
    """CPU by role and user-encoder executions between ``start`` and ``stop``."""

    def __init__(self, orchestrators: set[int], http_port: int) -> None:
        self.orchestrators, self.http_port = orchestrators, http_port

    def start(self) -> None:
        self._cpu = cpu_seconds(self.orchestrators)
        self._runs = user_encoder_runs(self.http_port)

    def stop(self, calls: int) -> str:
        """One line: CPU ms per call by role (largest first) and histories per execution."""
        now = cpu_seconds(self.orchestrators)
        used = {name: now[name] - self._cpu[name] for name in now}
        inferences, executions = user_encoder_runs(self.http_port)
        inferences, executions = inferences - self._runs[0], executions - self._runs[1]
        largest_first = sorted(used.items(), key=lambda entry: -entry[1])
        parts = [f"{name} {s * 1000 / max(calls, 1):.2f}" for name, s in largest_first]
        total = sum(used.values()) * 1000 / max(calls, 1)
        batch = inferences / max(executions, 1)
        return (
            f"CPU ms per call {total:.2f} ({', '.join(parts)}); user encoder"
            f" {batch:.1f} histories per execution"
        )
