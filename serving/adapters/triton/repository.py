"""The runtime model repository Triton serves.

The committed ``model_repository/`` holds templates (config.pbtxt with
``kind: KIND_CPU``) and thin adapters (``1/model.py``). The runtime repository,
under the state folder locally or on a volume in production, gets the rendered
configs, a copy of each adapter in every version folder, and the weights.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from serving.adapters.triton.content_model import ContentModel
from serving.config import InstanceKind
from serving.core.domain import CONTENT_ENCODER as CONTENT_ENCODER
from serving.core.domain import USER_ENCODER as USER_ENCODER
from serving.core.encoders import ContentEncoderId

if TYPE_CHECKING:  # torch only where a version is written (training), not to serve
    from serving.models.user_encoder import UserEncoder

TEMPLATES = Path(__file__).resolve().parents[3] / "model_repository"
MODELS = (CONTENT_ENCODER, USER_ENCODER)
WEIGHTS = "weights.pt"
MODEL_CONFIG = "config.json"
CONTENT_ENCODER_RECORD = "content_encoder.json"
"""Next to a version's weights: the content encoder it was trained with."""
KNOWN_ITEMS = "known_items.npy"
"""Next to a version's weights: its vocabulary's item vectors by token (row 0 zero), so
that the user encoder takes known items' tokens alone (model_repository/user_encoder)."""
_KIND = re.compile(r"kind:\s*KIND_[A-Z]+")
_EMBEDDING_DIMS = re.compile(r'(name:\s*"EMBEDDING"[^}]*dims:\s*\[\s*)\d+(\s*\])')


def render_config(template: str, kind: InstanceKind) -> str:
    """The template with every instance group's kind set to ``kind``."""
    if not _KIND.search(template):
        raise ValueError("config template has no instance_group kind")
    return _KIND.sub(f"kind: {kind.value}", template)


def render_content_config(template: str, kind: InstanceKind, content: ContentModel) -> str:
    """The content encoder's config for ``content``: EMBEDDING as wide as its vectors, and
    parameters naming the folder (model.py loads it) and its identity (the orchestrator
    reads it back with the model config, to label what the encoder produced)."""
    if not _EMBEDDING_DIMS.search(template):
        raise ValueError("content encoder template has no EMBEDDING output dims")
    rendered = _EMBEDDING_DIMS.sub(rf"\g<1>{content.dim}\g<2>", render_config(template, kind))
    values = {
        "model_dir": str(content.folder),
        "encoder_name": content.name,
        "dim": str(content.dim),
        "fingerprint": content.fingerprint,
    }
    entries = ",\n".join(
        f"  {{ key: {json.dumps(key)} value: {{ string_value: {json.dumps(value)} }} }}"
        for key, value in values.items()
    )
    return f"{rendered.rstrip()}\nparameters [\n{entries}\n]\n"


def versions(repository: Path, model: str) -> list[int]:
    """Numbered version folders of ``model``, ascending."""
    folder = repository / model
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def prepare_repository(
    repository: Path, kind: InstanceKind, content_model: Path | None = None
) -> ContentModel:
    """Render configs (the content encoder's for the sentence-transformers folder
    ``content_model``, default the bundled MiniLM) and refresh adapters; weights and
    versions already there are kept. Returns what was read of the folder."""
    content = ContentModel.load(content_model)
    for model in MODELS:
        target = repository / model
        target.mkdir(parents=True, exist_ok=True)
        template = (TEMPLATES / model / "config.pbtxt").read_text()
        rendered = (
            render_content_config(template, kind, content)
            if model == CONTENT_ENCODER
            else render_config(template, kind)
        )
        (target / "config.pbtxt").write_text(rendered)
        adapter = TEMPLATES / model / "1" / "model.py"
        model_versions = versions(repository, model) or ([1] if model == CONTENT_ENCODER else [])
        for version in model_versions:
            (target / str(version)).mkdir(exist_ok=True)
            shutil.copy2(adapter, target / str(version) / "model.py")
    return content


def write_user_encoder_version(
    repository: Path,
    model: UserEncoder,
    version: int,
    content_encoder: ContentEncoderId | None = None,
    known_vectors: np.ndarray | None = None,
) -> int:
    """Write ``model`` as version ``version`` (atomically: Triton never sees half a folder),
    with the content encoder it was trained with when known, and its vocabulary's item
    vectors (``ItemSpace.known_vectors``) when given."""
    import torch

    folder = repository / USER_ENCODER
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / str(version)).exists():
        raise FileExistsError(f"{USER_ENCODER} version {version} already exists")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    torch.save(model.state_dict(), staging / WEIGHTS)
    (staging / MODEL_CONFIG).write_text(json.dumps(model.config.to_dict(), indent=2))
    if content_encoder is not None:
        record = json.dumps(content_encoder.to_dict(), indent=2)
        (staging / CONTENT_ENCODER_RECORD).write_text(record)
    if known_vectors is not None:
        zero = np.zeros((1, known_vectors.shape[1]), np.float32)
        np.save(staging / KNOWN_ITEMS, np.concatenate([zero, known_vectors]).astype(np.float32))
    shutil.copy2(TEMPLATES / USER_ENCODER / "1" / "model.py", staging / "model.py")
    os.chmod(staging, 0o755)
    staging.rename(folder / str(version))
    return version


def remove_version(repository: Path, model: str, version: int) -> None:
    shutil.rmtree(repository / model / str(version))
