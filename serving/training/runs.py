"""A trained run on disk: the model, its vocabulary and content table, and its record.

A run folder is what ``recsys train`` leaves and ``recsys eval`` / ``recsys export`` read;
it lives wherever the user says (by default under the state folder), never in the
model repository: only ``export`` turns a run into a served version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from serving.models.user_encoder import UserEncoder, UserEncoderConfig

WEIGHTS = "weights.pt"
CONFIG = "config.json"
RECORD = "run.json"
CONTENT = "content.npy"


@dataclass
class Run:
    model: UserEncoder
    vocabulary: tuple[str, ...]
    content: np.ndarray
    """(num_items, dim) content embeddings the model was trained with (zeros: ID-only);
    ``record["content_encoder"]`` names the encoder that produced them."""
    record: dict[str, Any] = field(default_factory=dict)
    """Data source, options, losses, validations, time, memory."""


def save_run(folder: Path, run: Run) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(run.model.state_dict(), folder / WEIGHTS)
    (folder / CONFIG).write_text(json.dumps(run.model.config.to_dict(), indent=2))
    np.save(folder / CONTENT, run.content.astype(np.float32))
    record = {**run.record, "vocabulary": list(run.vocabulary)}
    (folder / RECORD).write_text(json.dumps(record, indent=2))


def load_run(folder: Path) -> Run:
    missing = [n for n in (WEIGHTS, CONFIG, RECORD, CONTENT) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a training run (missing {', '.join(missing)})")
    config = UserEncoderConfig(**json.loads((folder / CONFIG).read_text()))
    model = UserEncoder(config)
    model.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu"))
    model.eval()
    record = json.loads((folder / RECORD).read_text())
    vocabulary = tuple(record.pop("vocabulary"))
    return Run(model, vocabulary, np.load(folder / CONTENT), record)
