"""The offline loop against the running platform: train on the logged events, export a
new user_encoder version that the real tritonserver loads and Recommend serves, then
roll back to the version before it."""

from __future__ import annotations

import re
import threading
import time

import pytest

from serving.adapters.triton.repository import versions
from serving.client import Event, RecsysClient
from serving.core.domain import USER_ENCODER
from tests.integration.platform import Running
from tests.integration.test_cli import recsys

pytestmark = pytest.mark.integration


def served_version(client: RecsysClient, version: str, timeout_s: float = 60) -> str:
    """Wait until Recommend for a user with a history (only then is the model asked)
    reports ``version`` (a loaded machine can turn an answer into a fallback, which has
    none); the orchestrator follows what Triton serves."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = client.recommend("lifecycle-0", k=3).model_version
        if current == version:
            return current
        assert time.monotonic() < deadline, f"serving {current!r}, expected {version!r}"
        time.sleep(0.2)


def test_export_serves_a_new_version_and_rollback_restores_the_last(
    platform: Running, client: RecsysClient, tmp_path
):
    catalogue = client.recommend("lifecycle-catalogue", k=40).item_ids
    for user in range(12):
        clicks = [catalogue[(user + step) % len(catalogue)] for step in range(5)]
        client.log_feedback([Event(item, "click", user_id=f"lifecycle-{user}") for item in clicks])
    # Triton serves the newest version folder of the runtime repository.
    newest = max(versions(platform.settings.model_repository, USER_ENCODER))
    before = served_version(client, str(newest))

    run = tmp_path / "run"
    trained = recsys(
        platform, "train", "--from-db", "--out", str(run), "--epochs", "2", "--max-len", "8",
        "--dim", "16", "--batch-size", "16",
    )  # fmt: skip
    assert "validation NDCG@10" in trained

    # Recommend keeps answering while Triton and the item index switch versions (the new
    # model is 16 wide, the old one 64: a vector scored against the other version's item
    # space was an INTERNAL error, and with equal widths would be silently wrong).
    errors: list[Exception] = []
    switching = threading.Event()

    def recommend_meanwhile() -> None:
        while not switching.is_set():
            try:
                client.recommend("lifecycle-1", k=5)
            except Exception as error:
                errors.append(error)

    meanwhile = threading.Thread(target=recommend_meanwhile)
    meanwhile.start()
    try:
        exported = recsys(platform, "export", "--run", str(run))
        match = re.search(r"exported user_encoder v(\d+)", exported)
        assert match, exported
        version = match.group(1)
        assert int(version) > int(before)
        folder = platform.settings.model_repository / "user_encoder" / version
        assert (folder / "weights.pt").exists()
        served_version(client, version)
        assert len(client.recommend("lifecycle-0", k=5).items) == 5

        rolled = recsys(platform, "rollback")
        assert f"rolled back user_encoder v{version}; now serving v{before}" in rolled
        served_version(client, before)
    finally:
        switching.set()
        meanwhile.join()
    assert not errors, errors
    assert not folder.exists()
