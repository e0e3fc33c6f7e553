"""The ranking parameters: validated data, versioned in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from serving.core.errors import InvalidArgument


class Exploration(StrEnum):
    OFF = "off"
    THOMPSON = "thompson"
    EPSILON = "epsilon"


Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
MAX_RULE_CATEGORIES = 100


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
    include_categories: tuple[Category, ...] = Field((), max_length=MAX_RULE_CATEGORIES)
    """Business rule: only items in one of these categories (empty: all)."""
    exclude_categories: tuple[Category, ...] = Field((), max_length=MAX_RULE_CATEGORIES)
    """Business rule: never items in these categories (a request can add more)."""
    query_weight: float = Field(0.7, ge=0, le=1)
    """Share of relevance a request's free-text query takes; the history takes the rest
    (without history the query takes all of it)."""
    new_item_confidence: float = Field(1.0, ge=0, le=3)
    """How far relevance trusts items newer than the model (placed by their text alone): 1
    scores one like a known item whose content is as close to the user; lower shrinks new
    items toward the average known item (fewer shown), higher favours them."""

    def merged(self, values: dict[str, Any]) -> Parameters:
        """These parameters with ``values`` (validated) replacing their fields."""
        return merge_parameters(self, values, ())


def parse_parameters(values: dict[str, Any], prefix: str = "parameters") -> Parameters:
    """Parameters from raw values; a bad value is InvalidArgument naming the field."""
    try:
        return Parameters.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "parameters"
        raise InvalidArgument(f"{prefix}.{name}", first["msg"]) from None


def check_mask(mask: Iterable[str]) -> list[str]:
    """The field names of an update mask; an unknown name is InvalidArgument."""
    names = list(mask)
    for name in names:
        if name not in Parameters.model_fields:
            raise InvalidArgument("update_mask", f"unknown parameter {name!r}")
    return names


def merge_parameters(
    current: Parameters, values: dict[str, Any], mask: Iterable[str], prefix: str = "parameters"
) -> Parameters:
    """``current`` with the fields named in ``mask`` (every field of ``values`` when the
    mask is empty) replaced by ``values``; an unknown name is InvalidArgument."""
    names = check_mask(mask) or list(values)
    merged = current.model_dump() | {name: values[name] for name in names}
    return parse_parameters(merged, prefix)


@dataclass(frozen=True)
class ParameterVersion:
    version: int
    parameters: Parameters
    changed_by: str
    reason: str
    created_at: datetime
