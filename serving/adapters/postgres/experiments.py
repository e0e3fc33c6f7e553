"""Experiments and their variants; every change NOTIFYs the servers like a parameter change."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres.db import translate_outages
from serving.adapters.postgres.parameters import CHANNEL
from serving.core.errors import FailedPrecondition, NotFound
from serving.core.experiments import Experiment, ExperimentRecord, Variant


async def _variants(conn: psycopg.AsyncConnection, name: str) -> tuple[Variant, ...]:
    cur = await conn.execute(
        "SELECT name, share, parameters FROM variants WHERE experiment = %s ORDER BY position",
        (name,),
    )
    return tuple(Variant(n, float(s), dict(p)) for n, s, p in await cur.fetchall())


async def running_experiment(pool: AsyncConnectionPool) -> Experiment | None:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT name FROM experiments WHERE status = 'running'")
        row = await cur.fetchone()
        if row is None:
            return None
        return Experiment(row[0], await _variants(conn, row[0]))


async def list_experiments(pool: AsyncConnectionPool) -> list[ExperimentRecord]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT name, status, changed_by, reason, created_at FROM experiments"
            " ORDER BY created_at DESC"
        )
        rows = await cur.fetchall()
        return [
            ExperimentRecord(Experiment(name, await _variants(conn, name)), *rest)
            for name, *rest in rows
        ]


async def create_experiment(
    pool: AsyncConnectionPool, experiment: Experiment, changed_by: str, reason: str
) -> None:
    async with pool.connection() as conn, conn.transaction():
        try:
            await conn.execute(
                "INSERT INTO experiments (name, changed_by, reason) VALUES (%s, %s, %s)",
                (experiment.name, changed_by, reason),
            )
        except psycopg.errors.UniqueViolation as error:
            taken = error.diag.constraint_name == "experiments_pkey"
            raise FailedPrecondition(
                f"name: an experiment named {experiment.name!r} exists"
                if taken
                else "an experiment is already running: stop it first"
            ) from None
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO variants (experiment, name, position, share, parameters)"
                " VALUES (%s, %s, %s, %s, %s)",
                [
                    (experiment.name, v.name, i, v.share, Jsonb(v.overrides))
                    for i, v in enumerate(experiment.variants)
                ],
            )
        await conn.execute("SELECT pg_notify(%s, 'experiments')", (CHANNEL,))


async def allocate(pool: AsyncConnectionPool, name: str, shares: Mapping[str, float]) -> None:
    async with pool.connection() as conn, conn.transaction():
        for variant, share in shares.items():
            cur = await conn.execute(
                "UPDATE variants SET share = %s WHERE experiment = %s AND name = %s",
                (share, name, variant),
            )
            if cur.rowcount != 1:
                raise NotFound(f"shares: no variant {variant!r} in experiment {name!r}")
        await conn.execute("SELECT pg_notify(%s, 'experiments')", (CHANNEL,))


async def stop(pool: AsyncConnectionPool, name: str) -> None:
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE experiments SET status = 'stopped', stopped_at = now()"
            " WHERE name = %s AND status = 'running'",
            (name,),
        )
        if cur.rowcount != 1:
            raise NotFound(f"name: no running experiment {name!r}")
        await conn.execute("SELECT pg_notify(%s, 'experiments')", (CHANNEL,))


async def load(pool: AsyncConnectionPool, name: str) -> ExperimentRecord:
    for record in await list_experiments(pool):
        if record.experiment.name == name:
            return record
    raise NotFound(f"name: no experiment {name!r}")


class PostgresExperiments:
    """The ExperimentStore port on PostgreSQL."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @translate_outages
    async def running(self) -> Experiment | None:
        return await running_experiment(self._pool)

    @translate_outages
    async def create(self, experiment: Experiment, changed_by: str, reason: str) -> None:
        await create_experiment(self._pool, experiment, changed_by, reason)

    @translate_outages
    async def load(self, name: str) -> ExperimentRecord:
        return await load(self._pool, name)

    @translate_outages
    async def allocate(self, name: str, shares: dict[str, float]) -> None:
        await allocate(self._pool, name, shares)

    @translate_outages
    async def stop(self, name: str) -> None:
        await stop(self._pool, name)

    @translate_outages
    async def list(self) -> list[ExperimentRecord]:
        return await list_experiments(self._pool)
