"""Feedback use cases: LogFeedback, ForgetUser, MergeSession."""

from __future__ import annotations

from datetime import UTC, datetime

from serving.app.ports import DashboardTraces, FeedbackLog, Impressions, ParameterSource
from serving.core.domain import FeedbackEvent, FeedbackResult
from serving.core.experiments import CONTROL_VARIANT
from serving.core.validation import check_id, validate_events


class FeedbackService:
    def __init__(
        self,
        feedback: FeedbackLog,
        impressions: Impressions,
        parameters: ParameterSource,
        traces: DashboardTraces,
    ) -> None:
        self._feedback = feedback
        self._traces = traces
        self._impressions = impressions
        self._parameters = parameters

    async def log_feedback(self, events: list[FeedbackEvent]) -> FeedbackResult:
        """Record ``events`` durably (once per event id) before answering."""
        validate_events(events, datetime.now(UTC))
        params = self._parameters.current.parameters
        experiment = self._parameters.experiment
        return await self._feedback.record_feedback(
            events,
            params.popularity_half_life_hours,
            (lambda subject: experiment.assign(subject).name) if experiment else _no_variant,
        )

    async def forget_user(self, user_id: str) -> int:
        """Delete everything about ``user_id``; the number of their events deleted.

        Three steps, each retry-safe: lists served but not written yet are written (they
        would outlive the deletion), the dashboard's traces go (found through the user's
        events and lists, so first), then the events, state and lists themselves."""
        check_id("user_id", user_id)
        await self._impressions.flush()
        await self._traces.forget_user(user_id)
        return await self._feedback.forget_user(user_id)

    async def merge_session(self, session_id: str, user_id: str) -> int:
        """The visitor behind ``session_id`` signed in as ``user_id``."""
        check_id("session_id", session_id)
        check_id("user_id", user_id)
        return await self._feedback.merge_session(session_id, user_id)


def _no_variant(subject: str) -> str:
    return CONTROL_VARIANT
