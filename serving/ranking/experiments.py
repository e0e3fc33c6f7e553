"""A/B experiments: deterministic assignment of users to variants by hashing."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from serving.errors import InvalidArgument
from serving.ranking.parameters import Parameters, merge_parameters, parse_parameters

SHARE_TOLERANCE = 1e-6
MAX_VARIANTS = 20


@dataclass(frozen=True)
class Variant:
    name: str
    share: float
    overrides: dict[str, Any] = field(default_factory=dict)

    def parameters(self, base: Parameters) -> Parameters:
        """The base parameters with this variant's overrides."""
        return merge_parameters(base, self.overrides, ()) if self.overrides else base


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


def validate_variants(variants: Sequence[Variant]) -> None:
    """Names unique and set, shares in [0, 1] summing to 1, overrides valid parameters."""
    if not variants:
        raise InvalidArgument("variants", "an experiment needs at least one variant")
    if len(variants) > MAX_VARIANTS:
        raise InvalidArgument("variants", f"at most {MAX_VARIANTS} variants")
    names = set()
    for index, variant in enumerate(variants):
        prefix = f"variants[{index}]"
        if not variant.name or len(variant.name) > 64 or not variant.name.isprintable():
            raise InvalidArgument(f"{prefix}.name", "must be 1 to 64 printable characters")
        if variant.name in names:
            raise InvalidArgument(f"{prefix}.name", f"duplicate variant {variant.name!r}")
        names.add(variant.name)
        if not 0 <= variant.share <= 1:
            raise InvalidArgument(f"{prefix}.share", "must be between 0 and 1")
        parse_parameters(Parameters().model_dump() | variant.overrides, f"{prefix}.parameters")
    total = sum(v.share for v in variants)
    if abs(total - 1) > SHARE_TOLERANCE:
        raise InvalidArgument("variants", f"shares must add up to 1, they add up to {total:g}")
