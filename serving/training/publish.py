"""Publishing runs to the serving model repository, and going back.

Export writes the next numbered ``user_encoder`` version (its item space first, see
``export.export_user_encoder``) and asks Triton (explicit model control) to load the
model again: with ``version_policy: latest 2`` it serves the two highest versions, and the
orchestrator follows the highest Triton reports ready (asking the one before it until its
item index is in the new version's space). Rollback moves the newest
version out of the repository (into the state folder's archive, so nothing is lost)
and reloads, which brings back the one before it.
"""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path

from serving.adapters.triton import repository
from serving.adapters.triton.client import TritonEncoders
from serving.adapters.triton.content_model import ContentModel
from serving.config import Settings
from serving.core.encoders import ContentEncoderId
from serving.training.export import export_user_encoder
from serving.training.runs import Run, load_run

LOAD_TIMEOUT_MS = 120_000
RECORD_KEYS = (
    "dataset", "users", "items", "use_content", "best_epoch", "validation", "source",
    "content_encoder",
)  # fmt: skip


async def reload_user_encoder(settings: Settings) -> None:
    """Have Triton load the newest user_encoder version in the repository."""
    encoders = TritonEncoders(settings.triton_grpc_url, timeout_ms=LOAD_TIMEOUT_MS)
    try:
        await encoders.load(repository.USER_ENCODER)
    finally:
        await encoders.close()


class EncoderMismatch(ValueError):
    """The run was trained with another content encoder than the one serving."""


def serving_encoder_for(run: Run, settings: Settings) -> ContentEncoderId:
    """The serving content encoder (``RECSYS_CONTENT_MODEL``), if ``run`` was trained with
    it; EncoderMismatch otherwise. Runs from before encoders were recorded were all
    trained with the bundled MiniLM."""
    serving = ContentModel.load(settings.content_model).identity
    trained = ContentEncoderId.from_dict(run.record.get("content_encoder"))
    if trained is None:
        trained = ContentModel.load(None).identity
        if trained.dim != run.model.config.content_dim:
            raise EncoderMismatch(
                f"the run records no content encoder and takes {run.model.config.content_dim}-d"
                " content: retrain it with `recsys train`"
            )
    if trained.fingerprint != serving.fingerprint:
        raise EncoderMismatch(
            f"the run was trained with content encoder {trained}; the platform serves"
            f" {serving} (RECSYS_CONTENT_MODEL). Retrain with the serving encoder, or serve"
            " the run's (RECSYS_CONTENT_MODEL, `recsys prepare-models`, `recsys reembed`)"
        )
    return serving


def export_run(settings: Settings, database_url: str, run_folder: Path, *, load: bool) -> int:
    """The run as the next version; returns its number. EncoderMismatch (nothing written)
    when the run was trained with another content encoder than the one serving."""
    run = load_run(run_folder)
    encoder = serving_encoder_for(run, settings)
    target = settings.model_repository
    if not (target / repository.USER_ENCODER / "config.pbtxt").is_file():
        repository.prepare_repository(target, settings.triton_instance_kind, settings.content_model)
    metrics = {k: run.record.get(k) for k in RECORD_KEYS} | {"run": str(run_folder.resolve())}

    async def publish() -> int:
        from serving.adapters.postgres.db import open_pool

        pool = await open_pool(database_url, 2)
        try:
            return await export_user_encoder(
                pool, target, run.model, run.vocabulary, run.content, metrics, encoder
            )
        finally:
            await pool.close()

    version = asyncio.run(publish())
    if load:
        asyncio.run(reload_user_encoder(settings))
    return version


def archive_folder(settings: Settings) -> Path:
    return settings.state_dir / "model_archive" / repository.USER_ENCODER


def rollback_version(settings: Settings, *, load: bool) -> tuple[int, int]:
    """Archive the newest version and serve the previous one: (removed, now serving)."""
    target = settings.model_repository
    on_disk = repository.versions(target, repository.USER_ENCODER)
    if len(on_disk) < 2:
        raise ValueError(f"nothing to roll back to: user_encoder versions on disk {on_disk}")
    newest = on_disk[-1]
    archive = archive_folder(settings)
    archive.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    shutil.move(target / repository.USER_ENCODER / str(newest), archive / f"{newest}-{stamp}")
    if load:
        asyncio.run(reload_user_encoder(settings))
    return newest, on_disk[-2]
