"""Runs the TypeScript SDK's node tests (sdk/typescript) from pytest.

The SDK is built once per session from the lockfile (`npm ci` when node_modules is missing,
then `npm run build`, which regenerates the types from protos/). Without node/npm the tests
skip on a developer's machine, but fail under CI=true: CI must not pass without them.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Mapping

import pytest

from serving.adapters.postgres.db import PROJECT_ROOT

SDK_DIR = PROJECT_ROOT / "sdk" / "typescript"


def npm() -> str:
    """The npm executable, or skip (fail under CI) when node or npm is missing."""
    found = shutil.which("npm")
    if found is None or shutil.which("node") is None:
        message = "node and npm are needed for the TypeScript SDK (Node 20+)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _run(args: list[str], env: Mapping[str, str] | None = None, timeout_s: float = 600) -> str:
    result = subprocess.run(
        args,
        cwd=SDK_DIR,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{output}"
    return output


@functools.cache
def built() -> str:
    """npm, after the SDK is installed from its lockfile and built from the current protos."""
    executable = npm()
    if not (SDK_DIR / "node_modules").is_dir():
        _run([executable, "ci", "--no-audit", "--no-fund"])
    _run([executable, "run", "build"])
    return executable


def node_tests(script: str, env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Runs `npm run <script>` (node's test runner) and returns its closing counts; fails
    with the runner's output unless every test passed and none was skipped."""
    output = _run([built(), "run", script], env)
    counts = {
        name: int(value)
        for name, value in re.findall(
            r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", output, flags=re.MULTILINE
        )
    }
    assert counts.get("tests", 0) > 0, f"no node test ran:\n{output}"
    assert counts["pass"] == counts["tests"], output
    assert counts["skipped"] == 0, output
    return counts
