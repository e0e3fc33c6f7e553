"""Monthly partitions of the events table.

Each server makes sure this month's and next month's partitions exist when it starts, so
events land in a month partition (and old months can be detached or dropped as a whole).
Rows outside them (late events from long ago) go to the default partition.
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

LOCK_KEY = 7_310_001  # pg_advisory_xact_lock: one replica creates partitions at a time


def month_start(moment: datetime, offset: int = 0) -> datetime:
    months = moment.year * 12 + moment.month - 1 + offset
    return datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)


async def ensure_event_partitions(
    pool: AsyncConnectionPool, now: datetime, months: int = 2
) -> None:
    """Create the partitions of the ``months`` months from ``now``'s month, if missing."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        for offset in range(months):
            start, end = month_start(now, offset), month_start(now, offset + 1)
            name = sql.Identifier(f"events_{start:%Y_%m}")
            await conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({})"
                ).format(name, sql.Literal(start), sql.Literal(end))
            )
