"""The README's command-line API examples, run as written against the real platform: the
block under "Using the API" (grpcurl from the dev extra, and `recsys call`), with the
address and token of the test platform in place of the defaults."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from serving.adapters.postgres.db import PROJECT_ROOT
from tests.integration.platform import ADMIN_TOKEN, Running

pytestmark = pytest.mark.integration

DEFAULT_TARGET = "localhost:50051"
DEFAULT_TOKEN = "recsys-dev-token"


def readme_commands() -> tuple[list[str], list[str]]:
    """(set-up lines, commands) of the first bash block after "## Using the API"; a line
    ending in a backslash continues on the next, comments are dropped."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("## Using the API", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert match, "no bash block under 'Using the API'"
    joined = match.group(1).replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    setup = [line for line in lines if line.startswith((". ", "source "))]
    return setup, [line for line in lines if line not in setup]


def run(platform: Running, setup: list[str], command: str) -> subprocess.CompletedProcess[str]:
    host, port = platform.target.rsplit(":", 1)
    script = "\n".join([*setup, command]).replace(DEFAULT_TARGET, platform.target)
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace(DEFAULT_TOKEN, ADMIN_TOKEN)],
        cwd=PROJECT_ROOT,
        # The README's settings are the defaults; the test platform has its own.
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(Path.home()),
            "RECSYS_GRPC_HOST": host,
            "RECSYS_GRPC_PORT": port,
            "RECSYS_ADMIN_TOKEN": ADMIN_TOKEN,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_readme_api_examples_work_as_written(platform: Running) -> None:
    setup, commands = readme_commands()
    assert any(c.startswith("grpcurl ") for c in commands)
    assert any(c.startswith("recsys call ") for c in commands)
    for command in commands:
        result = run(platform, setup, command)
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
        if command.endswith(" list"):
            assert {"recsys.v1.Recommender", "recsys.v1.Admin"} <= set(result.stdout.split())
            continue
        answer = json.loads(result.stdout)
        if "Recommender/Recommend" in command:
            [k] = re.findall(r'"k": (\d+)', command)
            assert len(answer["items"]) == int(k), command
            assert answer["recommendation_id"]
        elif "Admin/GetParameters" in command:
            assert int(answer["current"]["version"]) >= 1, command
        else:
            pytest.fail(f"the test does not know what {command!r} answers; teach it")


def test_recsys_call_reports_the_status_and_the_field(platform: Running) -> None:
    setup, _ = readme_commands()
    bad = run(
        platform,
        setup,
        'recsys call recsys.v1.Recommender/Recommend -d \'{"user_id": "ana", "k": 0}\'',
    )
    assert bad.returncode == 1
    assert "Code: INVALID_ARGUMENT" in bad.stderr and "Message: k: " in bad.stderr, bad.stderr
    denied = run(platform, setup, "recsys call Admin/GetParameters --token wrong")
    assert denied.returncode == 1
    assert "Code: UNAUTHENTICATED" in denied.stderr, denied.stderr
