"""Previewing a parameter change before it ships: its CTR estimated off-policy from the
logged lists, and the top lists of a few users before and after.

Each logged list is replayed: the candidate policy ranks for the user's state as it was
just before the list was served (rebuilt from the events), and its probability of showing
each logged item weighs that item's click. Popularity, freshness, the catalogue and the
model are today's, not those of the logging time, and per-request business rules are not
logged: the replay of the logging policy itself therefore matches its logs only up to that
drift, which is what the estimate of the unchanged policy shows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from serving.app.ports import LoggedLists, ParameterSource, UserStates
from serving.app.recommender import RecommenderService
from serving.core.domain import LoggedList, OffPolicyEstimate, UserPreview, UserState
from serving.core.errors import InvalidArgument
from serving.core.offpolicy import estimate
from serving.core.parameters import Parameters, check_mask, merge_parameters
from serving.core.validation import check_id

DEFAULT_HOURS = 24.0
MAX_HOURS = 24.0 * 90
DEFAULT_SAMPLE = 500
MAX_SAMPLE = 5000
MAX_USERS = 20
DEFAULT_USERS = 5
TOP_K = 10
CONCURRENCY = 4
"""Replays in flight at once: enough to keep Triton busy, few enough to leave room for
the live traffic the same server answers."""


@dataclass(frozen=True)
class Preview:
    estimate: OffPolicyEstimate
    users: tuple[UserPreview, ...]


def check_preview_request(hours: float, sample: int, user_ids: list[str]) -> None:
    if not 0 <= hours <= MAX_HOURS:
        raise InvalidArgument("hours", f"must be between 0 and {MAX_HOURS:g}")
    if not 0 <= sample <= MAX_SAMPLE:
        raise InvalidArgument("sample", f"must be between 0 and {MAX_SAMPLE}")
    if len(user_ids) > MAX_USERS:
        raise InvalidArgument("user_ids", f"at most {MAX_USERS} users")
    for user_id in user_ids:
        check_id("user_ids", user_id)


class PreviewService:
    """PreviewParameters: a candidate change judged on the logs before it ships."""

    def __init__(
        self,
        logged: LoggedLists,
        user_states: UserStates,
        recommender: RecommenderService,
        parameters: ParameterSource,
    ) -> None:
        self._logged = logged
        self._user_states = user_states
        self._recommender = recommender
        self._parameters = parameters

    async def preview(
        self,
        values: dict[str, Any],
        mask: list[str],
        hours: float = 0,
        sample: int = 0,
        user_ids: list[str] | None = None,
    ) -> Preview:
        """The candidate (``values`` over the current parameters, as an update would
        merge them) estimated on the logs, and the users' lists before and after."""
        user_ids = list(user_ids or [])
        check_preview_request(hours, sample, user_ids)
        current = self._parameters.current.parameters
        candidate = merge_parameters(current, values, check_mask(mask))
        since = datetime.now(UTC) - timedelta(hours=hours or DEFAULT_HOURS)
        logged = await self._logged.logged_lists(
            since, sample or DEFAULT_SAMPLE, candidate.history_length
        )
        users = user_ids or await self._logged.recent_users(DEFAULT_USERS)
        states = [await self._user_states.load_user_state(u) for u in users]
        limit = asyncio.Semaphore(CONCURRENCY)

        async def replayed(entry: LoggedList) -> np.ndarray:
            async with limit:
                ranking = await self._recommender.replay(
                    entry.state, candidate, len(entry.item_ids)
                )
            positions = [self._recommender.index.position(i) for i in entry.item_ids]
            shown = ranking.inclusion([p for p in positions if p is not None])
            known = iter(shown)  # items deleted since are ones the candidate cannot show
            return np.array([next(known) if p is not None else 0.0 for p in positions])

        async def top(state: UserState, params: Parameters) -> tuple[str, ...]:
            async with limit:
                ranking = await self._recommender.replay(state, params, TOP_K)
            return tuple(item.item_id for item in ranking.items)

        replays = await asyncio.gather(*(replayed(entry) for entry in logged))
        lists = await asyncio.gather(
            *(top(state, params) for state in states for params in (current, candidate))
        )
        return Preview(
            estimate=estimate(
                np.array([p for entry in logged for p in entry.propensities], dtype=float),
                np.concatenate(replays) if replays else np.zeros(0),
                np.array([i in entry.clicked for entry in logged for i in entry.item_ids]),
                len(logged),
            ),
            users=tuple(
                UserPreview(user, lists[2 * n], lists[2 * n + 1]) for n, user in enumerate(users)
            ),
        )
