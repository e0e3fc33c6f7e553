"""Operator actions on the ranking parameters: read, change (versioned, audited), history."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg_pool import AsyncConnectionPool

from serving.errors import InvalidArgument, NotFound
from serving.ranking.parameters import Parameters, ParameterVersion, parse_parameters
from serving.ranking.validation import check_id
from serving.store import parameters as parameter_store
from serving.store.db import outage_as_unavailable

MAX_REASON = 1000
MAX_HISTORY = 1000


def check_audit(changed_by: str, reason: str) -> None:
    """Every change names who made it and why."""
    check_id("changed_by", changed_by)
    if not reason.strip():
        raise InvalidArgument("reason", "must say why the parameters change")
    if len(reason) > MAX_REASON:
        raise InvalidArgument("reason", f"longer than {MAX_REASON} characters")


class AdminService:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def get(self) -> ParameterVersion:
        with outage_as_unavailable():
            return await parameter_store.current_parameters(self._pool)

    async def update(
        self, values: dict[str, Any], mask: Iterable[str], changed_by: str, reason: str
    ) -> ParameterVersion:
        """A new version: the fields in ``mask`` (all when empty) replaced by ``values``."""
        check_audit(changed_by, reason)
        mask = list(mask)
        for name in mask:
            if name not in Parameters.model_fields:
                raise InvalidArgument("update_mask", f"unknown parameter {name!r}")
        with outage_as_unavailable():
            current = await parameter_store.current_parameters(self._pool)
            merged = current.parameters.model_dump()
            merged.update({name: values[name] for name in (mask or values)})
            parameters = parse_parameters(merged)
            return await parameter_store.insert_parameters(
                self._pool, parameters, changed_by, reason
            )

    async def rollback(self, version: int, changed_by: str, reason: str) -> ParameterVersion:
        """A new version carrying the values of ``version``."""
        check_audit(changed_by, reason)
        with outage_as_unavailable():
            earlier = await parameter_store.parameter_version(self._pool, version)
            if earlier is None:
                raise NotFound(f"version: no parameter version {version}")
            return await parameter_store.insert_parameters(
                self._pool, earlier.parameters, changed_by, reason
            )

    async def history(self, limit: int) -> list[ParameterVersion]:
        if limit < 0 or limit > MAX_HISTORY:
            raise InvalidArgument("limit", f"must be between 0 and {MAX_HISTORY}")
        with outage_as_unavailable():
            return await parameter_store.parameter_history(self._pool, limit or 50)
