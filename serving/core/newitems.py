"""Items newer than the model, ranked on the same scale as the items it knows.

A known item's score is its learned embedding plus its projected content against the
user's vector; an item added after training has only the content part. The content part
places new items well among themselves, but it is not on the scale of the full scores:
the learned embeddings of the items the user's sequence points at score far higher than
any content vector, so new items never reach a list (benchmarks/RESULTS.md, "New items
placed by their text").

The calibration: a new item counts as good as a known item whose score is as many
standard deviations above the known items' mean as the new item's evidence is. Two pieces
of evidence, whichever places it higher: the model's *content part* (its projection of
the text, against the known items' content parts), and the *similarity of its text to
the user's recent items* (against the known items' similarities; this is what carries a
topic the model was never trained on, which its projection cannot express). Per user,

    new = mean(known) + c * std(known) * max(z(content part), z(similarity))

with c the ``new_item_confidence`` parameter (default 1). It needs no training, holds for
any number of new items (one included), and leaves known items' scores untouched. Pure
numpy: the orchestrator and the offline evaluation call the same functions, so what is
served is what was evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from serving.core.domain import NEGATIVE_EVENTS

if TYPE_CHECKING:
    from serving.core.index import IndexArrays

REFERENCE_SAMPLE = 2048
"""Known items that set the scale for new ones: enough for a mean and a deviation."""
RECENT = 10
"""The user's latest positive items whose text makes the profile (as the content
similarity baseline of benchmarks.quality)."""
# Below this spread a piece of evidence says nothing (an ID-only model's projection is
# zero; a profile no item resembles more than another): it is not used.
_FLAT = 1e-6


@dataclass(frozen=True)
class NewItems:
    """How one request ranks items newer than the model."""

    confidence: float = 1.0
    """The ``new_item_confidence`` parameter."""
    profile: np.ndarray | None = None
    """Unit mean content embedding of the user's recent positive items (None: none)."""


def reference_sample(known: np.ndarray) -> np.ndarray:
    """The known items (positions, or tokens) new ones are set against: all of them up to
    ``REFERENCE_SAMPLE``, an evenly spread sample beyond (the scale, not every score)."""
    return known[:: max(1, len(known) // REFERENCE_SAMPLE)]


def unit_rows(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    unit: np.ndarray = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def content_profile(recent: np.ndarray) -> np.ndarray | None:
    """The unit mean of the (unit-normalised) content embeddings ``recent`` (rows): what
    the user's latest positive items are about. None without any."""
    if len(recent) == 0:
        return None
    mean = unit_rows(np.asarray(recent, np.float32)).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > _FLAT else None


def recent_positive(tokens: Sequence[int], types: Sequence[int]) -> list[int]:
    """Of a history (oldest first) with event types, the latest ``RECENT`` entries that
    are not a dislike or a skip."""
    kept = [t for t, kind in zip(tokens, types, strict=True) if kind not in NEGATIVE_EVENTS]
    return kept[-RECENT:]


def _deviation(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """How many of the reference's standard deviations each value lies above its mean
    (per row); -inf where the reference is flat."""
    spread = reference.std(axis=-1, keepdims=True)
    flat = spread < _FLAT
    z = (values - reference.mean(axis=-1, keepdims=True)) / np.where(flat, 1.0, spread)
    return np.where(flat, -np.inf, z)


def calibrated_new_scores(
    new_content: np.ndarray,
    known: np.ndarray,
    known_content: np.ndarray,
    confidence: float = 1.0,
    similarity: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Scores of new items on the known items' scale.

    ``new_content`` (..., m): the new items' scores (content part only, all they have);
    ``known`` (..., r) and ``known_content`` (..., r): known items' full scores and their
    content parts, column for column (all known items, or a sample of them).
    ``similarity``: the new items' (..., m) and those known items' (..., r) similarity to
    the user's profile. Leading axes are users. ``confidence`` scales the deviation (0
    puts every new item at the known mean). Without known items, or where no evidence has
    a spread, ``new_content`` unchanged.
    """
    new_content = np.asarray(new_content, np.float64)
    if known.shape[-1] < 2:
        return new_content
    z = _deviation(new_content, known_content)
    if similarity is not None:
        z = np.maximum(z, _deviation(*similarity))
    placed = known.mean(axis=-1, keepdims=True) + confidence * known.std(axis=-1, keepdims=True) * z
    return np.where(np.isfinite(z), placed, new_content)


def user_scores(
    arrays: IndexArrays,
    user: np.ndarray,
    new_items: NewItems,
    positions: np.ndarray | None = None,
) -> np.ndarray:
    """Scores against the user vector of the items at ``positions`` (default: every item),
    new items calibrated to known ones."""
    vectors = arrays.vectors if positions is None else arrays.vectors[positions]
    scores: np.ndarray = vectors @ user
    if arrays.space is None:
        return scores
    new = arrays.unlearned if positions is None else np.flatnonzero(~arrays.learned[positions])
    reference, projected = arrays.calibration_reference
    if len(new) == 0 or len(reference) < 2:
        return scores
    new_positions = new if positions is None else positions[new]
    similarity = None
    if new_items.profile is not None:
        profile = new_items.profile
        similarity = (
            unit_rows(arrays.content_of(new_positions)) @ profile,
            arrays.reference_unit_content @ profile,
        )
    # The known sample's scores: read off the full product when there is one.
    known = scores[reference] if positions is None else arrays.vectors[reference] @ user
    # A new item's vector is its content part alone: its raw score is that part's score.
    scores[new] = calibrated_new_scores(
        scores[new],
        known,
        projected @ user,
        new_items.confidence,
        similarity,
    )
    return scores
