"""The TypeScript SDK against the real platform: its node integration tests
(sdk/typescript/test/integration) run against the shared test platform and a TLS-only
server on the same database, with the addresses in environment variables."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.integration.platform import ADMIN_TOKEN, Running
from tests.integration.test_security import tls_server
from tests.node_sdk import node_tests

pytestmark = pytest.mark.integration


def test_typescript_sdk_against_the_real_platform(platform: Running, tmp_path) -> None:
    run = f"ts-sdk-{uuid.uuid4().hex[:12]}"
    with tls_server(platform, tmp_path) as (tls_target, root):
        (tmp_path / "root.pem").write_bytes(root)
        counts = node_tests(
            "test:integration",
            {
                "RECSYS_TARGET": platform.target,
                "RECSYS_ADMIN_TOKEN": ADMIN_TOKEN,
                "RECSYS_TEST_RUN": run,
                "RECSYS_TLS_TARGET": tls_target,
                "RECSYS_TLS_ROOT_CERT": str(tmp_path / "root.pem"),
            },
        )
    assert counts["pass"] >= 7
    # The events sent twice with the same ids are stored once.
    with psycopg.connect(platform.url) as conn:
        [(stored,)] = conn.execute(
            "SELECT count(*) FROM events WHERE user_id = %s", (f"{run}-retry",)
        ).fetchall()
    assert stored == 2
