"""A/B experiments: deterministic assignment of users to variants by hashing.

Plain data and the standard library only: the SDK takes and returns these types and
installs without pydantic (validation lives in ``serving.core.validation``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.core.parameters import Parameters

CONTROL_VARIANT = "control"
"""The variant of every subject while no experiment runs."""


@dataclass(frozen=True)
class Variant:
    name: str
    share: float
    overrides: dict[str, Any] = field(default_factory=dict)

    def parameters(self, base: Parameters) -> Parameters:
        """The base parameters with this variant's overrides."""
        return base.merged(self.overrides) if self.overrides else base


@dataclass(frozen=True)
class Experiment:
    name: str
    variants: tuple[Variant, ...]

    def assign(self, subject: str) -> Variant:
        """The subject's variant: a stable hash of (experiment, subject) against the
        cumulative shares, so a user keeps their variant and shares hold in aggregate."""
        digest = hashlib.sha256(f"{self.name}\x00{subject}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64
        cumulative = 0.0
        for variant in self.variants:
            cumulative += variant.share
            if point < cumulative:
                return variant
        return self.variants[-1]


@dataclass(frozen=True)
class ExperimentRecord:
    """An experiment with its status and audit fields, as stored."""

    experiment: Experiment
    status: str
    changed_by: str
    reason: str
    created_at: datetime
