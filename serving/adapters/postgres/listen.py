"""LISTEN/NOTIFY: a callback run on every notification on a channel, and on a slow poll
as a backstop, over a dedicated connection that reconnects by itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import psycopg
from psycopg import sql

from serving.core.errors import Unavailable

log = logging.getLogger(__name__)


class NotificationListener:
    """Runs ``on_notify`` once on connecting (anything missed while (re)connecting), on
    every notification on ``channel``, and every ``poll_s`` without one."""

    def __init__(
        self,
        url: str,
        channel: str,
        on_notify: Callable[[], Awaitable[None]],
        poll_s: float = 30,
    ) -> None:
        self._url = url
        self._channel = channel
        self._on_notify = on_notify
        self._poll_s = poll_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name=f"listen-{self._channel}")

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    await self._on_notify()
                    while True:
                        async for _ in conn.notifies(timeout=self._poll_s):
                            await self._on_notify()
                        await self._on_notify()
            except (psycopg.Error, OSError, Unavailable) as error:
                log.warning("listener on %s lost the database (%s); retrying", self._channel, error)
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
