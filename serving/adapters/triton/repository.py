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

from serving.config import InstanceKind
from serving.core.domain import CONTENT_ENCODER as CONTENT_ENCODER
from serving.core.domain import USER_ENCODER as USER_ENCODER

if TYPE_CHECKING:  # torch only where a version is written (training), not to serve
    from serving.models.user_encoder import UserEncoder

TEMPLATES = Path(__file__).resolve().parents[3] / "model_repository"
MODELS = (CONTENT_ENCODER, USER_ENCODER)
WEIGHTS = "weights.pt"
MODEL_CONFIG = "config.json"
_KIND = re.compile(r"kind:\s*KIND_[A-Z]+")


def render_config(template: str, kind: InstanceKind) -> str:
    """The template with every instance group's kind set to ``kind``."""
    if not _KIND.search(template):
        raise ValueError("config template has no instance_group kind")
    return _KIND.sub(f"kind: {kind.value}", template)


def versions(repository: Path, model: str) -> list[int]:
    """Numbered version folders of ``model``, ascending."""
    folder = repository / model
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def prepare_repository(repository: Path, kind: InstanceKind) -> None:
    """Render configs and refresh adapters; weights and versions already there are kept."""
    for model in MODELS:
        target = repository / model
        target.mkdir(parents=True, exist_ok=True)
        template = (TEMPLATES / model / "config.pbtxt").read_text()
        (target / "config.pbtxt").write_text(render_config(template, kind))
        adapter = TEMPLATES / model / "1" / "model.py"
        model_versions = versions(repository, model) or ([1] if model == CONTENT_ENCODER else [])
        for version in model_versions:
            (target / str(version)).mkdir(exist_ok=True)
            shutil.copy2(adapter, target / str(version) / "model.py")


def write_user_encoder_version(repository: Path, model: UserEncoder, version: int) -> int:
    """Write ``model`` as version ``version`` (atomically: Triton never sees half a folder)."""
    import torch

    folder = repository / USER_ENCODER
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / str(version)).exists():
        raise FileExistsError(f"{USER_ENCODER} version {version} already exists")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    torch.save(model.state_dict(), staging / WEIGHTS)
    (staging / MODEL_CONFIG).write_text(json.dumps(model.config.to_dict(), indent=2))
    shutil.copy2(TEMPLATES / USER_ENCODER / "1" / "model.py", staging / "model.py")
    os.chmod(staging, 0o755)
    staging.rename(folder / str(version))
    return version


def remove_version(repository: Path, model: str, version: int) -> None:
    shutil.rmtree(repository / model / str(version))
