"""Versioned ranking parameters, and the NOTIFY channel that announces new versions."""

from __future__ import annotations

from collections.abc import Callable

from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres.db import translate_outages
from serving.core.errors import FailedPrecondition
from serving.core.parameters import Parameters, ParameterVersion

CHANNEL = "recsys_parameters"
COLUMNS = sql.SQL(", ").join(
    map(sql.Identifier, ("version", "parameters", "changed_by", "reason", "created_at"))
)


def _to_version(row: tuple) -> ParameterVersion:
    version, values, changed_by, reason, created_at = row
    return ParameterVersion(
        version, Parameters.model_validate(values), changed_by, reason, created_at
    )


async def latest_parameters(pool: AsyncConnectionPool) -> ParameterVersion | None:
    """The newest version (None before ``ensure_parameters`` ran)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            sql.SQL("SELECT {} FROM parameter_versions ORDER BY version DESC LIMIT 1").format(
                COLUMNS
            )
        )
        row = await cur.fetchone()
    return None if row is None else _to_version(row)


async def ensure_parameters(pool: AsyncConnectionPool) -> ParameterVersion:
    """Version 1 from the defaults when the table is empty (at start-up); the newest one."""
    return await change_parameters(
        pool, lambda current: Parameters(), "system", "initial defaults", if_empty=True
    )


async def change_parameters(
    pool: AsyncConnectionPool,
    change: Callable[[Parameters], Parameters],
    changed_by: str,
    reason: str,
    *,
    if_empty: bool = False,
) -> ParameterVersion:
    """Append the version that ``change`` makes of the newest one and NOTIFY every server,
    in one transaction. Writers are serialised, so versions and notifications stay in
    order and two concurrent partial updates both survive (the second sees the first)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("LOCK TABLE parameter_versions IN SHARE ROW EXCLUSIVE MODE")
        cur = await conn.execute(
            sql.SQL("SELECT {} FROM parameter_versions ORDER BY version DESC LIMIT 1").format(
                COLUMNS
            )
        )
        latest = await cur.fetchone()
        if if_empty and latest is not None:
            return _to_version(latest)
        current = _to_version(latest).parameters if latest is not None else Parameters()
        cur = await conn.execute(
            sql.SQL(
                "INSERT INTO parameter_versions (parameters, changed_by, reason)"
                " VALUES (%s, %s, %s) RETURNING {}"
            ).format(COLUMNS),
            (Jsonb(change(current).model_dump(mode="json")), changed_by, reason),
        )
        row = await cur.fetchone()
        assert row is not None
        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(row[0])))
    return _to_version(row)


async def parameter_version(pool: AsyncConnectionPool, version: int) -> ParameterVersion | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            sql.SQL("SELECT {} FROM parameter_versions WHERE version = %s").format(COLUMNS),
            (version,),
        )
        row = await cur.fetchone()
    return None if row is None else _to_version(row)


async def parameter_history(pool: AsyncConnectionPool, limit: int) -> list[ParameterVersion]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            sql.SQL("SELECT {} FROM parameter_versions ORDER BY version DESC LIMIT %s").format(
                COLUMNS
            ),
            (limit,),
        )
        return [_to_version(row) for row in await cur.fetchall()]


class PostgresParameters:
    """The ParameterStore port on PostgreSQL."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @translate_outages
    async def ensure(self) -> ParameterVersion:
        """Version 1 from the defaults on an empty table (the server calls it at start)."""
        return await ensure_parameters(self._pool)

    @translate_outages
    async def latest(self) -> ParameterVersion:
        latest = await latest_parameters(self._pool)
        if latest is None:
            raise FailedPrecondition("no parameter version yet (the server creates one at start)")
        return latest

    @translate_outages
    async def change(
        self, change: Callable[[Parameters], Parameters], changed_by: str, reason: str
    ) -> ParameterVersion:
        return await change_parameters(self._pool, change, changed_by, reason)

    @translate_outages
    async def version(self, version: int) -> ParameterVersion | None:
        return await parameter_version(self._pool, version)

    @translate_outages
    async def history(self, limit: int) -> list[ParameterVersion]:
        return await parameter_history(self._pool, limit)
