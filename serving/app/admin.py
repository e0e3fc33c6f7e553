"""Operator actions on the ranking parameters: read, change (versioned, audited), history."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from serving.app.ports import ExperimentStore, ParameterStore
from serving.app.preview import PreviewService
from serving.core.errors import InvalidArgument, NotFound
from serving.core.experiments import Experiment, ExperimentRecord, Variant
from serving.core.parameters import ParameterVersion, check_mask, merge_parameters
from serving.core.validation import check_id, validate_variants

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
    """The Admin API's use cases: parameters (versioned, audited) and experiments."""

    def __init__(
        self,
        parameters: ParameterStore,
        experiments: ExperimentStore,
        previewer: PreviewService,
    ) -> None:
        self._parameters = parameters
        self._experiments = experiments
        self.preview = previewer.preview

    async def get(self) -> ParameterVersion:
        return await self._parameters.latest()

    async def update(
        self, values: dict[str, Any], mask: Iterable[str], changed_by: str, reason: str
    ) -> ParameterVersion:
        """A new version: the fields in ``mask`` (all when empty) replaced by ``values``."""
        check_audit(changed_by, reason)
        mask = check_mask(mask)
        return await self._parameters.change(
            lambda current: merge_parameters(current, values, mask),
            changed_by,
            reason,
        )

    async def rollback(self, version: int, changed_by: str, reason: str) -> ParameterVersion:
        """A new version carrying the values of ``version``."""
        check_audit(changed_by, reason)
        earlier = await self._parameters.version(version)
        if earlier is None:
            raise NotFound(f"version: no parameter version {version}")
        return await self._parameters.change(lambda current: earlier.parameters, changed_by, reason)

    async def history(self, limit: int) -> list[ParameterVersion]:
        if limit < 0 or limit > MAX_HISTORY:
            raise InvalidArgument("limit", f"must be between 0 and {MAX_HISTORY}")
        return await self._parameters.history(limit or 50)

    async def create_experiment(
        self, name: str, variants: list[Variant], changed_by: str, reason: str
    ) -> ExperimentRecord:
        check_audit(changed_by, reason)
        check_id("name", name)
        validate_variants(variants)
        experiment = Experiment(name, tuple(variants))
        await self._experiments.create(experiment, changed_by, reason)
        return await self._experiments.load(name)

    async def allocate(
        self, name: str, shares: dict[str, float], changed_by: str, reason: str
    ) -> ExperimentRecord:
        """New traffic shares; the result must still add up to 1."""
        check_audit(changed_by, reason)
        current = await self._experiments.load(name)
        known = {v.name for v in current.experiment.variants}
        for variant in shares:
            if variant not in known:
                raise InvalidArgument("shares", f"no variant {variant!r} in {name!r}")
        validate_variants(
            [replace(v, share=shares.get(v.name, v.share)) for v in current.experiment.variants]
        )
        await self._experiments.allocate(name, shares)
        log.info("experiment %s re-allocated by %s: %s", name, changed_by, reason)
        return await self._experiments.load(name)

    async def stop_experiment(self, name: str, changed_by: str, reason: str) -> ExperimentRecord:
        check_audit(changed_by, reason)
        await self._experiments.stop(name)
        log.info("experiment %s stopped by %s: %s", name, changed_by, reason)
        return await self._experiments.load(name)

    async def experiments(self) -> list[ExperimentRecord]:
        return await self._experiments.list()
