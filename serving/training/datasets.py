"""Interaction datasets for training and offline evaluation, and the leave-one-out split.

Every source (MovieLens files, a generic events file, the events logged in PostgreSQL)
becomes one :class:`Dataset`: a catalogue (item ids and the text the content encoder
reads) and each user's time-ordered sequence of item tokens. Tokens are 1-based
positions in the catalogue, so 0 can mean padding, as in the user encoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from serving.core.domain import EventType


class DatasetError(ValueError):
    """A malformed input file; the message names the file and, where it can, the line."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Dataset:
    """A catalogue and the users' interaction sequences over it."""

    name: str
    item_ids: tuple[str, ...]
    texts: tuple[str, ...]
    """What the content encoder reads for each item (aligned with ``item_ids``)."""
    users: tuple[str, ...]
    sequences: tuple[np.ndarray, ...]
    """Per user, item tokens (1-based into ``item_ids``), oldest first."""
    event_types: tuple[np.ndarray, ...] | None = None
    """Per user, the EventType of each interaction; None means every one is a CLICK."""
    content: np.ndarray | None = field(default=None, compare=False)
    """Content embeddings already known (e.g. stored with the catalogue), else None."""

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def num_interactions(self) -> int:
        return sum(len(s) for s in self.sequences)

    def types_of(self, user: int) -> np.ndarray:
        if self.event_types is None:
            return np.full(len(self.sequences[user]), int(EventType.CLICK), dtype=np.int64)
        return self.event_types[user]

    def summary(self) -> dict[str, int | str]:
        return {
            "dataset": self.name,
            "users": len(self.users),
            "items": self.num_items,
            "interactions": self.num_interactions,
        }


def build_dataset(
    name: str,
    interactions: Mapping[str, Sequence[tuple[float, str, int]]],
    catalogue: Mapping[str, str],
    *,
    content: Mapping[str, np.ndarray] | None = None,
) -> Dataset:
    """A dataset from per-user (timestamp, item_id, event_type) lists and item texts.

    Interactions are sorted by time (stable, so equal timestamps keep file order).
    Items without text get their id as text; the catalogue keeps its given order, then
    any item that only appears in interactions.
    """
    item_ids = list(catalogue)
    known = set(item_ids)
    for events in interactions.values():
        for _, item, _ in events:
            if item not in known:
                known.add(item)
                item_ids.append(item)
    token = {item: i + 1 for i, item in enumerate(item_ids)}
    users, sequences, types = [], [], []
    for user, events in interactions.items():
        ordered = sorted(events, key=lambda e: e[0])
        if not ordered:
            continue
        users.append(user)
        sequences.append(np.fromiter((token[e[1]] for e in ordered), np.int64, len(ordered)))
        types.append(np.fromiter((e[2] for e in ordered), np.int64, len(ordered)))
    all_clicks = all((t == int(EventType.CLICK)).all() for t in types)
    table = None
    if content is not None:
        dim = len(next(iter(content.values()))) if content else 0
        table = np.zeros((len(item_ids), dim), dtype=np.float32)
        for i, item in enumerate(item_ids):
            if item in content:
                table[i] = content[item]
    return Dataset(
        name=name,
        item_ids=tuple(item_ids),
        texts=tuple(catalogue.get(i) or i for i in item_ids),
        users=tuple(users),
        sequences=tuple(sequences),
        event_types=None if all_clicks else tuple(types),
        content=table,
    )


@dataclass(frozen=True)
class Split:
    """Leave-one-out: per evaluated user, the input sequence and the held-out target.

    Validation: input seq[:-2], target seq[-2]. Test: input seq[:-1], target seq[-1].
    Users with fewer than 3 interactions are only trained on.
    """

    users: np.ndarray
    """Indices into ``Dataset.users``."""
    inputs: tuple[np.ndarray, ...]
    input_types: tuple[np.ndarray, ...]
    targets: np.ndarray
    """Target tokens (1-based)."""


def leave_one_out(dataset: Dataset, phase: str) -> Split:
    """The validation (``phase="valid"``) or test (``"test"``) split."""
    if phase not in {"valid", "test"}:
        raise ValueError(f"phase must be 'valid' or 'test', not {phase!r}")
    cut = 2 if phase == "valid" else 1
    users, inputs, types, targets = [], [], [], []
    for u, sequence in enumerate(dataset.sequences):
        if len(sequence) < 3:
            continue
        end = len(sequence) - cut
        users.append(u)
        inputs.append(sequence[:end])
        types.append(dataset.types_of(u)[:end])
        targets.append(sequence[end])
    return Split(
        users=np.asarray(users, dtype=np.int64),
        inputs=tuple(inputs),
        input_types=tuple(types),
        targets=np.asarray(targets, dtype=np.int64),
    )


def with_targets_rarer_than(split: Split, dataset: Dataset, max_count: int) -> Split:
    """The users of ``split`` whose target is in at most ``max_count`` training
    interactions: where a model has to rely on content more than on co-occurrence."""
    trained, _ = training_sequences(dataset)
    counts = np.bincount(np.concatenate([*trained, np.zeros(0, np.int64)]),
                         minlength=dataset.num_items + 1)  # fmt: skip
    return _users(split, np.flatnonzero(counts[split.targets] <= max_count))


def with_targets_in(split: Split, items: np.ndarray) -> Split:
    """The users of ``split`` whose target is one of ``items`` (tokens)."""
    return _users(split, np.flatnonzero(np.isin(split.targets, items)))


def without_targets_in(split: Split, items: np.ndarray) -> Split:
    """The users of ``split`` whose target is not one of ``items`` (tokens)."""
    return _users(split, np.flatnonzero(~np.isin(split.targets, items)))


def _users(split: Split, keep: np.ndarray) -> Split:
    return Split(
        users=split.users[keep],
        inputs=tuple(split.inputs[i] for i in keep),
        input_types=tuple(split.input_types[i] for i in keep),
        targets=split.targets[keep],
    )


def cold_items(dataset: Dataset, fraction: float, seed: int = 0) -> np.ndarray:
    """A seeded random ``fraction`` of the catalogue (sorted tokens) to play new items."""
    if not 0 < fraction < 1:
        raise ValueError(f"the fraction of cold items must be in (0, 1), not {fraction}")
    count = max(1, round(fraction * dataset.num_items))
    chosen = np.random.default_rng(seed).choice(dataset.num_items, count, replace=False)
    return np.sort(chosen + 1).astype(np.int64)


def without_items(dataset: Dataset, items: np.ndarray) -> Dataset:
    """The dataset as it was before ``items`` (tokens) existed: every interaction with
    them removed, the catalogue unchanged (so tokens still line up)."""
    keep = [~np.isin(sequence, items) for sequence in dataset.sequences]
    types = None
    if dataset.event_types is not None:
        types = tuple(t[k] for t, k in zip(dataset.event_types, keep, strict=True))
    return replace(
        dataset,
        name=f"{dataset.name} without {len(items)} items",
        sequences=tuple(s[k] for s, k in zip(dataset.sequences, keep, strict=True)),
        event_types=types,
    )


def training_sequences(dataset: Dataset) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """What the model may learn from: every user's sequence without the last two items
    (validation and test targets); short users (< 3 interactions) entirely."""
    tokens, types = [], []
    for u, sequence in enumerate(dataset.sequences):
        end = len(sequence) - 2 if len(sequence) >= 3 else len(sequence)
        tokens.append(sequence[:end])
        types.append(dataset.types_of(u)[:end])
    return tokens, types


def iter_lines(path: Path, encoding: str = "utf-8") -> Iterable[tuple[int, str]]:
    """(line number, line without its newline) of a text file, skipping blank lines;
    a missing file or undecodable bytes become a DatasetError naming the file and line.

    Lines are decoded one by one (a text-mode file decodes ahead in blocks, so it
    could not say which line is bad).
    """
    if not path.is_file():
        raise DatasetError(path, "file not found")
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DatasetError(path, f"not {encoding} text ({error.reason})", number) from None
            if line.strip():
                yield number, line
