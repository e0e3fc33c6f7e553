"""Shared test helpers."""

from __future__ import annotations

import os

import pytest

from serving.stack import free_port

__all__ = ["IN_CI", "free_port", "require_tool"]

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
"""CI=true (as GitHub Actions and most CI services set it)."""


def require_tool(present: bool, reason: str) -> None:
    """Skip the test when a tool it drives (kubectl, chromium, checkov) is missing, except
    in CI: there a skip would let a run pass that checked nothing, so it fails instead."""
    if present:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing tool fails the run)", pytrace=False)
    pytest.skip(reason)
