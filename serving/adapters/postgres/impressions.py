"""Recommendations and their impressions, written off the hot path in batches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from psycopg.abc import Buffer
from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres.db import translate_outages
from serving.adapters.postgres.feedback import LOCK_STATS
from serving.core.domain import LoggedRecommendation

log = logging.getLogger(__name__)


RECOMMENDATIONS_COPY = (
    "COPY recommendations (recommendation_id, user_id, session_id, variant,"
    " parameter_version, model_version, latency_ms, degraded, created_at) FROM STDIN"
)
IMPRESSIONS_COPY = (
    "COPY impressions (recommendation_id, position, item_id, score, propensity,"
    " components, created_at) FROM STDIN"
)


class RowFormatter(Protocol):
    """What a psycopg COPY formats rows with (``AsyncCopy.formatter``)."""

    def write_row(self, row: Sequence[Any]) -> Buffer: ...
    def end(self) -> Buffer: ...


async def write_recommendations(
    pool: AsyncConnectionPool, batch: Sequence[LoggedRecommendation], *, offload: bool = True
) -> None:
    """COPY a batch of recommendations and their impressions in one transaction.

    Impressions are a log, not an acknowledged write: the commit does not wait for the WAL
    flush (a crash may lose the last fraction of a second of them, never feedback).

    Formatting a batch (JSON components, COPY text) is about 0.2 ms of Python per
    recommendation, done in one go: on the event loop, a batch of 200 held every request
    for 40 ms. With ``offload`` (the default) a worker thread formats, and the interpreter
    hands the lock back to the loop every few milliseconds
    (``benchmarks/impression_writes.py`` measures both).
    """
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.execute("SET LOCAL synchronous_commit TO off")
        for sql, rows in (
            (RECOMMENDATIONS_COPY, _recommendation_rows),
            (IMPRESSIONS_COPY, _impression_rows),
        ):
            async with cur.copy(sql) as copy:
                if offload:
                    data = await asyncio.to_thread(_formatted, copy.formatter, rows(batch))
                else:
                    data = _formatted(copy.formatter, rows(batch))
                await copy.write(data)
        # Exposure counts feed exploration (Thompson sampling on clicks / impressions). They
        # leave updated_at alone: replicas count their own impressions as they serve, and
        # take the database's totals whenever feedback changes an item's row.
        shown = Counter(item.item_id for entry in batch for item in entry.recommendation.items)
        item_ids = sorted(shown)
        # Rows locked in item order first, as LogFeedback does: otherwise the join's order
        # and LogFeedback's deadlock (seen under load: both then fail and retry).
        await cur.execute(LOCK_STATS, (item_ids,))
        await cur.execute(
            "UPDATE item_stats AS s SET impressions = s.impressions + n.count"
            " FROM unnest(%s::text[], %s::bigint[]) AS n(item_id, count)"
            " WHERE s.item_id = n.item_id",
            (item_ids, [shown[i] for i in item_ids]),
        )


def _recommendation_rows(batch: Sequence[LoggedRecommendation]) -> Iterator[tuple[Any, ...]]:
    for entry in batch:
        rec = entry.recommendation
        yield (
            rec.recommendation_id,
            entry.user_id,
            entry.session_id,
            rec.variant,
            rec.parameter_version,
            rec.model_version,
            entry.latency_ms,
            rec.degraded,
            entry.served_at,
        )


def _impression_rows(batch: Sequence[LoggedRecommendation]) -> Iterator[tuple[Any, ...]]:
    for entry in batch:
        rec = entry.recommendation
        for position, item in enumerate(rec.items):
            yield (
                rec.recommendation_id,
                position,
                item.item_id,
                item.score,
                item.propensity,
                json.dumps(item.components),
                entry.served_at,
            )


def _formatted(formatter: RowFormatter, rows: Iterable[Sequence[Any]]) -> bytes:
    """The COPY data of ``rows``, all of it (the copy then has nothing left to send)."""
    data = bytearray()
    for row in rows:
        data += formatter.write_row(row)
    data += formatter.end()
    return bytes(data)


class ImpressionWriter:
    """Buffers recommendations and writes them in batches from a background task.

    ``record`` never blocks or touches the database. While PostgreSQL is down the
    buffer keeps up to ``max_buffered`` entries (then drops the oldest and logs it);
    ``close`` flushes what is left.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        flush_interval_s: float,
        batch_size: int,
        max_buffered: int = 200_000,
    ) -> None:
        self._pool = pool
        self._interval = flush_interval_s
        self._batch_size = batch_size
        self._buffer: deque[LoggedRecommendation] = deque(maxlen=max_buffered)
        self._wakeup = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="impression-writer")

    def record(self, entry: LoggedRecommendation) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(entry)
        if len(self._buffer) >= self._batch_size:
            self._wakeup.set()

    @translate_outages
    async def flush(self) -> None:
        """Write everything buffered now (returns when done or raises). One flush at a
        time: the background task and a caller (ForgetUser) would write a batch twice."""
        async with self._flushing:
            while self._buffer:
                size = min(self._batch_size, len(self._buffer))
                batch = [self._buffer[i] for i in range(size)]
                await write_recommendations(self._pool, batch)
                for _ in batch:
                    self._buffer.popleft()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._interval)
            self._wakeup.clear()
            try:
                await self.flush()
            except Exception:
                log.warning("impression write failed; %d buffered, will retry", len(self._buffer))
                await asyncio.sleep(min(self._interval * 5, 2.0))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:
            log.exception("could not flush %d buffered impressions at shutdown", len(self._buffer))
