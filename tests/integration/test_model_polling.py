"""The Kubernetes Triton flags against the real tritonserver: it starts and is ready (by the
probe path of the manifest) on a repository whose user_encoder has no version yet, loads a
version written later, and serves the previous one when the newest is removed (rollback).
A version written with its items' vectors answers a history of known items from their
tokens alone, as the model does with every position's content, and histories coalesced
into one call as each alone.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from serving.adapters.postgres.db import PROJECT_ROOT
from serving.adapters.triton import repository
from serving.adapters.triton.client import TritonEncoders
from serving.adapters.triton.tritonserver import server_environment, server_home
from serving.config import InstanceKind
from serving.core import bfloat16
from serving.core.errors import Unavailable
from serving.models.user_encoder import UserEncoder, UserEncoderConfig
from serving.stack import free_port
from serving.training.export import item_space
from tests.integration.platform import Running

pytestmark = pytest.mark.integration
MANIFEST = PROJECT_ROOT / "deploy" / "k8s" / "base" / "triton.yaml"
LOCAL = ("model-repository", "http-port", "grpc-port", "metrics-port", "repository-poll-secs")


def manifest_container() -> dict:
    for doc in yaml.safe_load_all(MANIFEST.read_text()):
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "triton":
            [container] = [
                c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == "triton"
            ]
            return container
    raise AssertionError("no triton Deployment")


def status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@pytest.fixture
def polling_triton(platform: Running, tmp_path: Path) -> Iterator[tuple[Path, int, str, int]]:
    models = tmp_path / "models"
    repository.prepare_repository(models, InstanceKind.CPU)
    assert not repository.versions(models, repository.USER_ENCODER)
    container = manifest_container()
    http, grpc = free_port(), free_port()
    flags = [a for a in container["args"] if a.removeprefix("--").split("=")[0] not in LOCAL]
    home = server_home(platform.settings.state_dir)
    command = [
        str(home / "bin" / "tritonserver"),
        *flags,
        f"--model-repository={models}",
        f"--backend-directory={home / 'backends'}",
        f"--http-port={http}",
        f"--grpc-port={grpc}",
        f"--metrics-port={free_port()}",
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        "--repository-poll-secs=1",  # the manifest's 15 s, shortened for the test
    ]
    with (tmp_path / "triton.log").open("wb") as log:
        process = subprocess.Popen(
            command, env=server_environment(), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield models, http, container["readinessProbe"]["httpGet"]["path"], grpc
        finally:
            process.terminate()
            process.wait(30)


def wait_for(port: int, path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while status(port, path) != 200:
        assert time.monotonic() < deadline, f"{path} not ready after {timeout_s:.0f}s"
        time.sleep(0.5)


def test_triton_starts_without_a_user_encoder_version_and_polls_new_ones(polling_triton):
    models, http, probe, _ = polling_triton
    wait_for(http, probe, timeout_s=240)
    assert status(http, "/v2/models/user_encoder/ready") != 200

    encoder = UserEncoder(UserEncoderConfig(num_items=20))
    repository.write_user_encoder_version(models, encoder, 1)
    wait_for(http, "/v2/models/user_encoder/versions/1/ready", timeout_s=90)
    repository.write_user_encoder_version(models, encoder, 2)
    wait_for(http, "/v2/models/user_encoder/versions/2/ready", timeout_s=90)

    repository.remove_version(models, repository.USER_ENCODER, 2)  # rollback
    deadline = time.monotonic() + 90
    while status(http, "/v2/models/user_encoder/versions/2/ready") == 200:
        assert time.monotonic() < deadline, "version 2 still served after its removal"
        time.sleep(0.5)
    wait_for(http, "/v2/models/user_encoder/versions/1/ready", timeout_s=30)
    assert status(http, probe) == 200


async def test_a_version_with_its_items_vectors_takes_known_items_tokens_alone(polling_triton):
    models, http, _, grpc = polling_triton
    torch.manual_seed(0)
    model = UserEncoder(UserEncoderConfig(num_items=20, dim=16, max_len=8, layers=1)).eval()
    rng = np.random.default_rng(0)
    # As the item index holds it, as the version was trained on it (bfloat16).
    content = bfloat16.rounded(rng.normal(size=(20, 384)).astype(np.float32))
    space = item_space(model, tuple(f"i{t}" for t in range(1, 21)), content, 1)
    repository.write_user_encoder_version(models, model, 1, known_vectors=space.known_vectors)
    wait_for(http, "/v2/models/user_encoder/versions/1/ready", timeout_s=240)

    tokens = np.array([0, 0, 3, 0, 7, 12, 0, 5])  # positions 3 and 6: items newer than it
    types = np.array([0, 0, 1, 1, 1, 2, 1, 1])
    new = rng.normal(size=(2, 384)).astype(np.float32)
    every = np.zeros((8, 384), np.float32)
    every[tokens > 0] = content[tokens[tokens > 0] - 1]
    every[[3, 6]] = new
    with torch.inference_mode():
        hidden, _ = model(*(torch.from_numpy(a[None]) for a in (tokens, types, every)))
    expected = hidden[0, -1].numpy()
    encoders = TritonEncoders(f"127.0.0.1:{grpc}", timeout_ms=10_000)
    try:
        compact = await encoders.encode_user(tokens, types, new)
        whole = await encoders.encode_user(tokens, types, every)
        assert np.allclose(compact.vector, expected, atol=1e-5)
        assert np.allclose(whole.vector, expected, atol=1e-5)
        known = np.where(types > 0, np.array([0, 0, 3, 9, 7, 12, 1, 5]), 0)
        alone = await encoders.encode_user(known, types, np.zeros((0, 384), np.float32))
        every[[3, 6]] = content[[8, 0]]
        with torch.inference_mode():
            hidden, _ = model(*(torch.from_numpy(a[None]) for a in (known, types, every)))
        assert np.allclose(alone.vector, hidden[0, -1].numpy(), atol=1e-5)
        with pytest.raises(Unavailable, match="one for each position of an unknown item"):
            await encoders.encode_user(tokens, types, new[:1])

        # Coalesced: histories asked for together go as one call, each one's rows of
        # unknown items padded to the most (2), and each answer is the one it gets alone.
        coalescing = TritonEncoders(f"127.0.0.1:{grpc}", timeout_ms=10_000, coalesce_users=True)
        one_new = np.where(np.arange(8) == 6, 0, known)
        histories = [(tokens, new), (known, new[:0]), (one_new, new[1:]), (tokens, new)]
        calls = []
        infer = coalescing._infer

        async def counted(model, inputs, *args):
            calls.append(inputs[0].shape())
            return await infer(model, inputs, *args)

        coalescing._infer = counted  # type: ignore[method-assign]
        try:
            together = await asyncio.gather(
                *(coalescing.encode_user(h, types, rows) for h, rows in histories)
            )
        finally:
            await coalescing.close()
        assert calls == [[4, 8]]
        for (history, rows), encoding in zip(histories, together, strict=True):
            single = await encoders.encode_user(history, types, rows)
            assert np.allclose(encoding.vector, single.vector, atol=1e-5)
            assert np.allclose(encoding.attention, single.attention, atol=1e-6)
    finally:
        await encoders.close()
