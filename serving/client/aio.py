"""Asyncio SDK client, the twin of ``RecsysClient``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, Unpack

import grpc
from recsys.v1 import recsys_pb2 as pb
from recsys.v1 import recsys_pb2_grpc as pb_grpc

from serving.client import types as t
from serving.core.domain import Item, Recommendation, SimilarList
from serving.core.experiments import Variant

R = TypeVar("R")


class AsyncRecsysClient:
    """``async with AsyncRecsysClient("localhost:50051") as client: ...`` (TLS options, and
    a ``channel`` of one's own, as in ``RecsysClient``)."""

    def __init__(
        self,
        target: str,
        token: str | None = None,
        *,
        timeout_s: float = t.DEFAULT_TIMEOUT_S,
        retries: int = 3,
        channel: grpc.aio.Channel | None = None,
        tls: bool = False,
        tls_root_cert: bytes | None = None,
    ) -> None:
        credentials = t.channel_credentials(tls, tls_root_cert)
        options = t.channel_options(retries)
        self._channel = channel or (
            grpc.aio.secure_channel(target, credentials, options)
            if credentials
            else grpc.aio.insecure_channel(target, options)
        )
        self._recommender = pb_grpc.RecommenderStub(self._channel)
        self._admin = pb_grpc.AdminStub(self._channel)
        self._metadata = t.auth_metadata(token)
        self._timeout = timeout_s

    async def _call(
        self, method: Callable[..., Awaitable[R]], request: Any, admin: bool = False
    ) -> R:
        metadata = self._metadata if admin else ()
        return await method(request, timeout=self._timeout, metadata=metadata)

    async def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        session_id: str = "",
        exclude: Iterable[str] = (),
        context: Mapping[str, str] | None = None,
        query: str | None = None,
    ) -> Recommendation:
        """The top ``k`` for a user (or, with ``user_id`` empty, the visitor behind
        ``session_id``); ``query`` says in the user's own words what they want now (1 to
        1,000 characters; it works without any history too)."""
        request = t.recommend_request(user_id, k, session_id, exclude, context or {}, query)
        return t.recommendation_from_proto(await self._call(self._recommender.Recommend, request))

    async def log_feedback(self, events: Sequence[t.Event]) -> t.FeedbackResult:
        response = await self._call(self._recommender.LogFeedback, t.feedback_request(events))
        return t.FeedbackResult(response.accepted, response.duplicates)

    async def upsert_items(self, items: Sequence[Item]) -> int:
        response = await self._call(self._recommender.UpsertItems, t.upsert_request(items))
        return int(response.upserted)

    async def similar_items(
        self, item_id: str | None = None, k: int = 10, **options: Unpack[t.SimilarOptions]
    ) -> SimilarList:
        """More like this, the asyncio twin of ``RecsysClient.similar_items``."""
        request = t.similar_items_request(item_id, k, options)
        return t.similar_from_proto(await self._call(self._recommender.SimilarItems, request))

    async def delete_items(self, item_ids: Sequence[str]) -> int:
        """Take items down (never recommended again within the index refresh; their
        events stay; ``upsert_items`` brings one back). Returns how many were live."""
        request = pb.DeleteItemsRequest(item_ids=list(item_ids))
        return int((await self._call(self._recommender.DeleteItems, request)).deleted)

    async def forget_user(self, user_id: str) -> int:
        request = pb.ForgetUserRequest(user_id=user_id)
        return int((await self._call(self._recommender.ForgetUser, request)).deleted_events)

    async def merge_session(self, session_id: str, user_id: str) -> int:
        """The visitor behind ``session_id`` signed in as ``user_id``."""
        request = pb.MergeSessionRequest(session_id=session_id, user_id=user_id)
        return int((await self._call(self._recommender.MergeSession, request)).merged_events)

    async def get_parameters(self) -> dict[str, Any]:
        response = await self._call(self._admin.GetParameters, pb.GetParametersRequest(), True)
        return t.parameters_from_proto(response.current)

    async def update_parameters(
        self, changes: Mapping[str, Any], *, changed_by: str, reason: str
    ) -> dict[str, Any]:
        request = t.update_parameters_request(changes, changed_by, reason)
        response = await self._call(self._admin.UpdateParameters, request, True)
        return t.parameters_from_proto(response.current)

    async def rollback_parameters(
        self, version: int, *, changed_by: str, reason: str
    ) -> dict[str, Any]:
        """Make the values of an earlier ``version`` current again (as a new version)."""
        request = pb.RollbackParametersRequest(
            version=version, changed_by=changed_by, reason=reason
        )
        response = await self._call(self._admin.RollbackParameters, request, True)
        return t.parameters_from_proto(response.current)

    async def parameter_history(self, limit: int = 50) -> list[dict[str, Any]]:
        request = pb.ListParameterHistoryRequest(limit=limit)
        response = await self._call(self._admin.ListParameterHistory, request, True)
        return [t.parameters_from_proto(v) for v in response.versions]

    async def preview_parameters(
        self,
        changes: Mapping[str, Any],
        *,
        hours: float = 24.0,
        sample: int = 500,
        users: Sequence[str] = (),
    ) -> t.ParameterPreview:
        """Judge a change before making it: its CTR estimated off-policy on the logged
        lists of the last ``hours`` (at most ``sample`` of them), and the top lists of
        ``users`` (default: recently active ones) before and after."""
        request = t.preview_parameters_request(changes, hours, sample, users)
        response = await self._call(self._admin.PreviewParameters, request, True)
        return t.preview_from_proto(response)

    async def create_experiment(
        self, name: str, variants: Sequence[Variant], *, changed_by: str, reason: str
    ) -> dict[str, Any]:
        """Start an A/B experiment (variants: name, traffic share, parameter overrides)."""
        request = t.create_experiment_request(name, variants, changed_by, reason)
        response = await self._call(self._admin.CreateExperiment, request, True)
        return t.experiment_from_proto(response.experiment)

    async def allocate_experiment(
        self, name: str, shares: Mapping[str, float], *, changed_by: str, reason: str
    ) -> dict[str, Any]:
        request = pb.AllocateExperimentRequest(
            name=name, shares=dict(shares), changed_by=changed_by, reason=reason
        )
        response = await self._call(self._admin.AllocateExperiment, request, True)
        return t.experiment_from_proto(response.experiment)

    async def stop_experiment(self, name: str, *, changed_by: str, reason: str) -> dict[str, Any]:
        request = pb.StopExperimentRequest(name=name, changed_by=changed_by, reason=reason)
        response = await self._call(self._admin.StopExperiment, request, True)
        return t.experiment_from_proto(response.experiment)

    async def list_experiments(self) -> list[dict[str, Any]]:
        request = pb.ListExperimentsRequest()
        response = await self._call(self._admin.ListExperiments, request, True)
        return [t.experiment_from_proto(e) for e in response.experiments]

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncRecsysClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
