"""Operator actions on the ranking parameters: read, change (versioned, audited), history."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from psycopg_pool import AsyncConnectionPool

from serving.errors import InvalidArgument, NotFound
from serving.ranking.experiments import Experiment, Variant, validate_variants
from serving.ranking.parameters import ParameterVersion, check_mask, merge_parameters
from serving.ranking.preview import ParameterPreview
from serving.ranking.validation import check_id
from serving.store import experiments as experiment_store
from serving.store import parameters as parameter_store
from serving.store.db import outage_as_unavailable
from serving.store.experiments import ExperimentRecord

log = logging.getLogger(__name__)
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
    def __init__(self, pool: AsyncConnectionPool, previewer: ParameterPreview) -> None:
        self._pool = pool
        self.preview = previewer.preview

    async def get(self) -> ParameterVersion:
        with outage_as_unavailable():
            return await parameter_store.current_parameters(self._pool)

    async def update(
        self, values: dict[str, Any], mask: Iterable[str], changed_by: str, reason: str
    ) -> ParameterVersion:
        """A new version: the fields in ``mask`` (all when empty) replaced by ``values``."""
        check_audit(changed_by, reason)
        mask = check_mask(mask)
        with outage_as_unavailable():
            return await parameter_store.change_parameters(
                self._pool,
                lambda current: merge_parameters(current, values, mask),
                changed_by,
                reason,
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

    async def create_experiment(
        self, name: str, variants: list[Variant], changed_by: str, reason: str
    ) -> ExperimentRecord:
        check_audit(changed_by, reason)
        check_id("name", name)
        validate_variants(variants)
        with outage_as_unavailable():
            experiment = Experiment(name, tuple(variants))
            await experiment_store.create_experiment(self._pool, experiment, changed_by, reason)
            return await experiment_store.load(self._pool, name)

    async def allocate(
        self, name: str, shares: dict[str, float], changed_by: str, reason: str
    ) -> ExperimentRecord:
        """New traffic shares; the result must still add up to 1."""
        check_audit(changed_by, reason)
        with outage_as_unavailable():
            current = await experiment_store.load(self._pool, name)
            known = {v.name for v in current.experiment.variants}
            for variant in shares:
                if variant not in known:
                    raise InvalidArgument("shares", f"no variant {variant!r} in {name!r}")
            validate_variants(
                [replace(v, share=shares.get(v.name, v.share)) for v in current.experiment.variants]
            )
            await experiment_store.allocate(self._pool, name, shares)
            log.info("experiment %s re-allocated by %s: %s", name, changed_by, reason)
            return await experiment_store.load(self._pool, name)

    async def stop_experiment(self, name: str, changed_by: str, reason: str) -> ExperimentRecord:
        check_audit(changed_by, reason)
        with outage_as_unavailable():
            await experiment_store.stop(self._pool, name)
            log.info("experiment %s stopped by %s: %s", name, changed_by, reason)
            return await experiment_store.load(self._pool, name)

    async def experiments(self) -> list[ExperimentRecord]:
        with outage_as_unavailable():
            return await experiment_store.list_experiments(self._pool)
