"""The ranking parameters: validated data, versioned in PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.errors import InvalidArgument


class Exploration(StrEnum):
    OFF = "off"
    THOMPSON = "thompson"
    EPSILON = "epsilon"


class Parameters(BaseModel):
    """The blend of one ranking policy. Bounds are part of the contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    relevance_weight: float = Field(1.0, ge=0, le=10)
    popularity_weight: float = Field(0.15, ge=0, le=10)
    freshness_weight: float = Field(0.05, ge=0, le=10)
    popularity_half_life_hours: float = Field(72.0, gt=0, le=24 * 365)
    freshness_half_life_hours: float = Field(24.0 * 14, gt=0, le=24 * 365 * 5)
    candidate_pool_size: int = Field(300, ge=10, le=10_000)
    history_length: int = Field(50, ge=1, le=200)
    exclude_seen: bool = True
    negative_feedback_penalty: float = Field(0.5, ge=0, le=10)
    """How strongly items similar to a disliked or skipped one are demoted."""
    diversity_lambda: float = Field(0.1, ge=0, le=5)
    """MMR: how strongly an item is demoted for resembling one already in the list."""
    max_per_category: int = Field(0, ge=0, le=1000)
    """At most this many items of one (primary) category per list; 0 means no cap."""
    exploration: Exploration = Exploration.THOMPSON
    exploration_weight: float = Field(0.3, ge=0, le=10)
    """Thompson: weight of the sampled click rate in the score. Epsilon: the probability
    that a slot shows a random item instead."""


def parse_parameters(values: dict[str, Any], prefix: str = "parameters") -> Parameters:
    """Parameters from raw values; a bad value is InvalidArgument naming the field."""
    try:
        return Parameters.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "parameters"
        raise InvalidArgument(f"{prefix}.{name}", first["msg"]) from None


@dataclass(frozen=True)
class ParameterVersion:
    version: int
    parameters: Parameters
    changed_by: str
    reason: str
    created_at: datetime
