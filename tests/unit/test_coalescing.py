"""CallCoalescer: requests that arrive while a call is in flight share the next call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from serving.adapters.triton.coalescing import CallCoalescer


class GatedSend:
    """A ``send`` that records its calls and answers each when released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.gate = asyncio.Event()
        self.failing: set[int] = set()  # which calls (0: the first) fail

    async def __call__(self, key: str, arguments: Sequence[int]) -> list[int]:
        call = len(self.calls)
        self.calls.append((key, list(arguments)))
        await self.gate.wait()
        if call in self.failing:
            raise RuntimeError("model server down")
        return [argument * 10 for argument in arguments]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def in_flight(
    max_batch: int, *queued: int
) -> tuple[GatedSend, CallCoalescer[str, int, int], asyncio.Future[int], list[asyncio.Future[int]]]:
    """A coalescer whose call for 1 is in flight, and the requests for ``queued`` behind it."""
    send = GatedSend()
    coalescer = CallCoalescer(send, max_batch=max_batch)
    first = asyncio.ensure_future(coalescer.submit("v1", 1))
    await settle()
    waiting = [asyncio.ensure_future(coalescer.submit("v1", n)) for n in queued]
    await settle()
    return send, coalescer, first, waiting


async def test_a_lone_request_is_sent_at_once_and_alone():
    send = GatedSend()
    send.gate.set()
    coalescer = CallCoalescer(send, max_batch=8)
    assert await coalescer.submit("v1", 3) == 30
    assert send.calls == [("v1", [3])]


async def test_requests_that_arrive_during_a_call_share_the_next_each_with_its_answer():
    send, _, first, queued = await in_flight(8, 2, 3, 4)
    assert send.calls == [("v1", [1])]  # the others wait for the call in flight
    send.gate.set()
    assert await first == 10
    assert await asyncio.gather(*queued) == [20, 30, 40]
    assert send.calls == [("v1", [1]), ("v1", [2, 3, 4])]


async def test_keys_never_share_a_call_and_a_batch_holds_at_most_max_batch():
    send = GatedSend()
    coalescer = CallCoalescer(send, max_batch=2)
    pending = [asyncio.ensure_future(coalescer.submit("v1", 1))]
    pending.append(asyncio.ensure_future(coalescer.submit("v2", 5)))
    await settle()
    pending += [asyncio.ensure_future(coalescer.submit("v1", n)) for n in (2, 3, 4)]
    send.gate.set()
    assert await asyncio.gather(*pending) == [10, 50, 20, 30, 40]
    assert sorted(send.calls) == [("v1", [1]), ("v1", [2, 3]), ("v1", [4]), ("v2", [5])]


async def test_a_failed_call_fails_the_requests_it_carried_only():
    send, _, first, (*carried, later) = await in_flight(2, 2, 3, 4)
    send.failing = {1}  # the call that carries 2 and 3
    send.gate.set()
    assert await first == 10
    for request in carried:
        with pytest.raises(RuntimeError, match="model server down"):
            await request
    assert await later == 40
    assert send.calls == [("v1", [1]), ("v1", [2, 3]), ("v1", [4])]


async def test_a_request_given_up_by_its_caller_leaves_the_others_answered():
    send, _, first, (abandoned, kept) = await in_flight(8, 2, 3)
    abandoned.cancel()  # a request past its deadline, while still queued
    send.gate.set()
    assert await first == 10
    assert await kept == 30
    assert send.calls == [("v1", [1]), ("v1", [3])]  # the given-up one was not sent


async def test_close_cancels_the_call_in_flight_and_the_queued_requests():
    send, coalescer, first, queued = await in_flight(1, 2, 3)
    await coalescer.close()
    for request in (first, *queued):
        with pytest.raises(asyncio.CancelledError):
            await request
    assert send.calls == [("v1", [1])]


async def test_the_queued_requests_are_sent_when_the_caller_of_the_call_in_flight_gives_up():
    send, _, first, (queued,) = await in_flight(8, 2)
    first.cancel()
    send.gate.set()
    assert await queued == 20
    with pytest.raises(asyncio.CancelledError):
        await first
    assert send.calls == [("v1", [1]), ("v1", [2])]
