"""Calls that wait for one already in flight go out together, as one batched call.

A Recommend costs the model server about as much per call as per user: the Python
backend's execute, the tensors' copies and the gRPC exchange are paid once per call, and
the orchestrator pays its own gRPC client's work once per call too. Under load the
orchestrator's requests reach Triton one after another (its event loop sends them), so
Triton's dynamic batcher seldom finds two to batch. Here, while a call for a key is in
flight, the next requests for that key queue, and go as one call when it returns. A
request with nothing in flight for its key is sent on the event loop's next turn (with
any asked for in the same turn), so this adds no wait at low load and batches as much as
the load brings. One sender task per key sends call after call: the next batch leaves as
soon as a call returns, before the callers it answered go on with their work (sending
from the first caller's own task instead held the next batch behind that caller's
ranking: fewer histories per execution, more CPU per Recommend, benchmarks/RESULTS.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
A = TypeVar("A")
R = TypeVar("R")


class CallCoalescer(Generic[K, A, R]):
    """``submit(key, argument)`` answers with ``send(key, arguments)``'s result for that
    argument; at most one ``send`` per key is in flight, with up to ``max_batch``
    arguments (those that queued meanwhile, oldest first). A failed ``send`` fails every
    request it carried."""

    def __init__(
        self, send: Callable[[K, Sequence[A]], Awaitable[Sequence[R]]], max_batch: int
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._send = send
        self._max_batch = max_batch
        self._queues: dict[K, list[tuple[A, asyncio.Future[R]]]] = {}
        self._senders: set[asyncio.Task[None]] = set()

    async def submit(self, key: K, argument: A) -> R:
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:  # nothing in flight for this key: a sender starts
            queue = self._queues[key] = []
            sender = asyncio.create_task(self._drain(key, queue))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        queue.append((argument, answer))
        return await answer

    async def _drain(self, key: K, queue: list[tuple[A, asyncio.Future[R]]]) -> None:
        """Send what queued for ``key``, call after call, until nothing is left (the
        queue is removed with no await between the last check and its removal)."""
        try:
            while queue:
                batch = queue[: self._max_batch]
                del queue[: self._max_batch]
                batch = [(argument, answer) for argument, answer in batch if not answer.done()]
                if batch:
                    await self._send_batch(key, batch)
        finally:
            del self._queues[key]
            for _, answer in queue:  # only when cancelled (shutdown)
                answer.cancel()

    async def _send_batch(self, key: K, batch: list[tuple[A, asyncio.Future[R]]]) -> None:
        try:
            results = await self._send(key, [argument for argument, _ in batch])
            for (_, answer), result in zip(batch, results, strict=True):
                if not answer.done():
                    answer.set_result(result)
        except Exception as error:  # every caller gets the call's error
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(error)
        except asyncio.CancelledError:
            for _, answer in batch:
                answer.cancel()
            raise

    async def close(self) -> None:
        """Cancel the calls in flight; their requests are cancelled."""
        for sender in list(self._senders):
            sender.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
