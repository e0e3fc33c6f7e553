"""`recsys up`'s options reach the stack: --no-demo starts without the demo catalogue,
its model and the simulator that clicks the demo's items."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from serving import stack
from serving.cli import app


def started_with(monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def run_stack(settings: object, **options: bool) -> int:
        seen.update(options)
        return 0

    monkeypatch.setattr(stack, "run_stack", run_stack)
    result = CliRunner().invoke(app, ["up", *args])
    assert result.exit_code == 0, result.output
    return seen


def test_up_runs_the_demo_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert started_with(monkeypatch) == {"simulate": True, "dashboard": True, "demo": True}


def test_no_demo_starts_empty_and_without_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    options = started_with(monkeypatch, "--no-demo", "--no-dashboard")
    assert options == {"simulate": False, "dashboard": False, "demo": False}
