"""Open-loop demo traffic: synthetic users ask for recommendations and react to them.

Requests start on a fixed schedule (``rate`` per second) whatever the latency, like real
users do, with a bound on how many are in flight; a tick that finds every slot busy is
dropped and counted rather than queued, so a slow server shows up as drops instead of
silently lowering the offered load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from serving.client.types import Event, FeedbackResult
from serving.core.domain import EventType, Item, Recommendation
from serving.demo.catalogue import CATEGORIES
from serving.demo.tastes import Taste, click_probability, make_tastes

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 8
K = 10
SUMMARY_EVERY_S = 30.0
_MAX_BACKOFF_S = 5.0

# Reactions to a clicked item, each drawn independently (a purchase needs a cart).
_LIKE_AFTER_CLICK = 0.2
_CART_AFTER_CLICK = 0.12
_PURCHASE_AFTER_CART = 0.4
# Reactions to a shown item outside the user's tastes that was not clicked.
_SKIP_UNLIKED = 0.08
_DISLIKE_UNLIKED = 0.02


class RecommenderClient(Protocol):
    """The part of ``AsyncRecsysClient`` the simulator uses (fakes implement this)."""

    async def recommend(self, user_id: str, k: int = 10) -> Recommendation: ...

    async def log_feedback(self, events: Sequence[Event]) -> FeedbackResult: ...


@dataclass
class SimulationStats:
    """What a simulation did; ``errors`` counts failed calls by gRPC status name."""

    recommends: int = 0
    events: int = 0
    clicks: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    """Ticks skipped because ``MAX_IN_FLIGHT`` calls were already running."""

    def summary(self) -> str:
        """One log line."""
        errors = ", ".join(f"{code}={n}" for code, n in sorted(self.errors.items())) or "none"
        return (
            f"recommends={self.recommends} events={self.events} clicks={self.clicks} "
            f"dropped={self.dropped} errors: {errors}"
        )


def position_bias(position: int) -> float:
    """Chance that a user looks at the item at ``position`` (0 = top), DCG-style."""
    return 1.0 / math.log2(position + 2)


def react(
    taste: Taste,
    recommendation: Recommendation,
    catalogue: dict[str, Item],
    rng: random.Random,
) -> list[Event]:
    """The feedback of one user to one recommendation, all tagged with its id."""
    events: list[Event] = []

    def emit(item_id: str, kind: EventType) -> None:
        events.append(
            Event(
                item_id=item_id,
                type=kind,
                user_id=taste.user_id,
                recommendation_id=recommendation.recommendation_id,
            )
        )

    for position, shown in enumerate(recommendation.items):
        item = catalogue.get(shown.item_id)
        # Items the simulator does not know (ingested by someone else) are mere curiosities.
        p_click = 0.02 if item is None else click_probability(taste, item)
        if rng.random() < p_click * position_bias(position):
            emit(shown.item_id, EventType.CLICK)
            if rng.random() < _LIKE_AFTER_CLICK:
                emit(shown.item_id, EventType.LIKE)
            if rng.random() < _CART_AFTER_CLICK:
                emit(shown.item_id, EventType.ADD_TO_CART)
                if rng.random() < _PURCHASE_AFTER_CART:
                    emit(shown.item_id, EventType.PURCHASE)
        elif item is not None and not taste.likes(item):
            draw = rng.random()
            if draw < _DISLIKE_UNLIKED:
                emit(shown.item_id, EventType.DISLIKE)
            elif draw < _DISLIKE_UNLIKED + _SKIP_UNLIKED:
                emit(shown.item_id, EventType.SKIP)
    return events


class _Run:
    """State shared by the scheduler and the in-flight sessions."""

    def __init__(
        self, client: RecommenderClient, items: Sequence[Item], users: int, seed: int
    ) -> None:
        self.client = client
        self.catalogue = {item.item_id: item for item in items}
        categories = sorted({c for item in items for c in item.categories}) or list(CATEGORIES)
        self.tastes = make_tastes(users, categories, seed)
        self.rng = random.Random(seed + 1)
        self.stats = SimulationStats()
        self.errors: Counter[str] = Counter()
        self.consecutive_errors = 0

    def failed(self, code: str, call: str, detail: str) -> None:
        self.errors[code] += 1
        self.stats.errors = dict(self.errors)
        self.consecutive_errors += 1
        if self.consecutive_errors == 1 or self.consecutive_errors % 50 == 0:
            log.warning("simulator: %s failed (%s): %s", call, code, detail)

    @property
    def backoff_s(self) -> float:
        """Pause before the next request: 0 while calls succeed, doubling on each failure."""
        if self.consecutive_errors == 0:
            return 0.0
        return float(min(_MAX_BACKOFF_S, 0.1 * 2 ** min(self.consecutive_errors, 10)))

    async def session(self) -> None:
        """One user visit: recommend, react, log the reactions."""
        taste = self.rng.choice(self.tastes)
        try:
            recommendation = await self.client.recommend(taste.user_id, k=K)
        except grpc.aio.AioRpcError as error:
            self.failed(error.code().name, "Recommend", str(error.details()))
            return
        except Exception as error:  # a load generator must outlive any server behaviour
            self.failed(type(error).__name__, "Recommend", repr(error))
            return
        self.stats.recommends += 1
        self.consecutive_errors = 0
        events = react(taste, recommendation, self.catalogue, self.rng)
        if not events:
            return
        try:
            await self.client.log_feedback(events)
        except grpc.aio.AioRpcError as error:
            self.failed(error.code().name, "LogFeedback", str(error.details()))
            return
        except Exception as error:
            self.failed(type(error).__name__, "LogFeedback", repr(error))
            return
        self.stats.events += len(events)
        self.stats.clicks += sum(e.type == EventType.CLICK for e in events)


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def simulate(
    client: RecommenderClient,
    items: list[Item],
    *,
    rate: float,
    users: int = 200,
    seed: int = 11,
    duration_s: float | None = None,
    stop: asyncio.Event | None = None,
    summary_every_s: float = SUMMARY_EVERY_S,
) -> SimulationStats:
    """Drive ``rate`` Recommend calls per second from ``users`` synthetic users until
    ``duration_s`` has passed or ``stop`` is set (with neither, until cancelled), and send
    each recommendation's feedback in one LogFeedback call. Server errors are counted,
    logged and backed off from, never raised. Returns what was done."""
    if rate <= 0:
        raise ValueError("rate must be > 0")
    if users < 1:
        raise ValueError("users must be >= 1")
    stop = stop or asyncio.Event()
    run = _Run(client, items, users, seed)
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate
    started = loop.time()
    deadline = math.inf if duration_s is None else started + duration_s
    next_tick = started
    next_summary = started + summary_every_s
    in_flight: set[asyncio.Task[None]] = set()
    try:
        while not stop.is_set() and loop.time() < deadline:
            await _sleep_or_stop(min(next_tick, deadline) - loop.time(), stop)
            now = loop.time()
            if stop.is_set() or now >= deadline:
                break
            if len(in_flight) >= MAX_IN_FLIGHT:
                run.stats.dropped += 1
            else:
                task = asyncio.create_task(run.session())
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            # Open loop: the schedule does not slip with latency; after a stall (e.g. a
            # backoff) it restarts from now instead of bursting to catch up.
            next_tick = max(next_tick + interval, now) + run.backoff_s
            if now >= next_summary:
                log.info("simulator: %s", run.stats.summary())
                next_summary = now + summary_every_s
    except asyncio.CancelledError:
        for task in in_flight:
            task.cancel()
        raise
    finally:
        if in_flight:
            # Let the running visits finish (their client calls have deadlines).
            await asyncio.gather(*in_flight, return_exceptions=True)
    log.info("simulator finished after %.1f s: %s", loop.time() - started, run.stats.summary())
    return run.stats
