"""Which content encoder produced a vector: its identity, and the pairing rule.

Item vectors of one content encoder are never scored against a user encoder trained with
another (DESIGN.md, "Content understanding"): the two would live in unrelated spaces, and
often of different widths. Pure data; the folder is read by the Triton adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ContentEncoderId:
    """A content encoder as recorded next to what it produced."""

    name: str
    dim: int
    fingerprint: str
    """A hash of the folder's configs and its files' names and sizes (see
    ``serving.adapters.triton.content_model``): two folders with one fingerprint embed alike."""

    def __str__(self) -> str:
        return f"{self.name} ({self.dim}-d, {self.fingerprint})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> ContentEncoderId | None:
        """The identity recorded as ``to_dict`` wrote it; None when nothing was recorded."""
        if not value or not value.get("fingerprint"):
            return None
        return cls(str(value["name"]), int(value["dim"]), str(value["fingerprint"]))


def pairing_problem(
    trained_with: ContentEncoderId | None, catalogue_fingerprint: str, catalogue_dim: int
) -> str | None:
    """Why a user encoder trained with ``trained_with`` must not score the catalogue's
    vectors (of ``catalogue_fingerprint``, ``catalogue_dim`` wide); None when it may.

    An empty fingerprint or a missing identity means "not recorded" (rows and versions
    written before encoders were recorded, all by the bundled MiniLM): only the width is
    checked then.
    """
    if trained_with is None or not catalogue_fingerprint:
        dim = trained_with.dim if trained_with is not None else catalogue_dim
        if dim != catalogue_dim:
            return f"it expects {dim}-d content vectors, the catalogue's are {catalogue_dim}-d"
        return None
    if trained_with.fingerprint != catalogue_fingerprint:
        return (
            f"it was trained with content encoder {trained_with}, the catalogue's vectors"
            f" come from encoder {catalogue_fingerprint} ({catalogue_dim}-d)"
        )
    return None
