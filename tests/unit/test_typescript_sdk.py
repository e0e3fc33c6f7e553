"""The TypeScript SDK's unit tests (node's test runner, a fake in-process gRPC server)."""

from __future__ import annotations

from tests.node_sdk import node_tests


def test_typescript_sdk_unit_tests_pass() -> None:
    counts = node_tests("test")
    assert counts["pass"] >= 10
