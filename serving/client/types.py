"""What the SDK takes and returns, and the request building both clients share."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, TypedDict

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from recsys.v1 import recsys_pb2 as pb

from serving.core.domain import (
    EventType,
    Item,
    OffPolicyEstimate,
    Recommendation,
    ScoredItem,
    SimilarList,
    UserPreview,
)
from serving.core.domain import FeedbackResult as FeedbackResult  # what log_feedback returns
from serving.core.experiments import Variant

DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Event:
    """One piece of feedback; ``event_id`` and ``timestamp`` are filled in when absent,
    so a retried call carries the same ones and is counted once."""

    item_id: str
    type: EventType | str
    user_id: str = ""
    session_id: str = ""
    recommendation_id: str = ""
    value: float = 0.0
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))


def event_type(value: EventType | str) -> EventType:
    if isinstance(value, EventType):
        return value
    return EventType[value.upper().removeprefix("EVENT_TYPE_")]


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def recommend_request(
    user_id: str,
    k: int,
    session_id: str,
    exclude: Iterable[str],
    context: Mapping[str, str],
    query: str | None = None,
) -> pb.RecommendRequest:
    return pb.RecommendRequest(
        user_id=user_id,
        session_id=session_id,
        k=k,
        exclude_item_ids=list(exclude),
        context=dict(context),
        query=query,
    )


class SimilarOptions(TypedDict, total=False):
    """SimilarItems' optional arguments, shared by both clients."""

    text: str
    """The anchor when no ``item_id`` is given: a free text (1 to 1,000 characters)."""
    user_id: str
    """Whose seen and disliked items stay out (or ``session_id`` for a visitor)."""
    session_id: str
    exclude: Iterable[str]
    context: Mapping[str, str]
    """Category rules, as Recommend's ``context``."""


def similar_items_request(
    item_id: str | None, k: int, options: SimilarOptions
) -> pb.SimilarItemsRequest:
    """The anchor is ``item_id`` or ``options["text"]`` (the server says INVALID_ARGUMENT
    unless exactly one is given)."""
    return pb.SimilarItemsRequest(
        item_id=item_id,
        text=options.get("text"),
        k=k,
        user_id=options.get("user_id", ""),
        session_id=options.get("session_id", ""),
        exclude_item_ids=list(options.get("exclude", ())),
        context=dict(options.get("context", {})),
    )


def feedback_request(events: Sequence[Event]) -> pb.LogFeedbackRequest:
    return pb.LogFeedbackRequest(
        events=[
            pb.FeedbackEvent(
                event_id=e.event_id,
                user_id=e.user_id,
                session_id=e.session_id,
                item_id=e.item_id,
                type=int(event_type(e.type)),
                recommendation_id=e.recommendation_id,
                timestamp=_timestamp(e.timestamp),
                value=e.value,
            )
            for e in events
        ]
    )


def upsert_request(items: Sequence[Item]) -> pb.UpsertItemsRequest:
    messages = []
    for item in items:
        message = pb.Item(
            item_id=item.item_id,
            title=item.title,
            description=item.description,
            categories=list(item.categories),
            tags=list(item.tags),
            attributes=dict(item.attributes),
        )
        for name in ("published_at", "available_from", "available_until"):
            moment = getattr(item, name)
            if moment is not None:
                getattr(message, name).CopyFrom(_timestamp(moment))
        messages.append(message)
    return pb.UpsertItemsRequest(items=messages)


def update_parameters_request(
    changes: Mapping[str, Any], changed_by: str, reason: str
) -> pb.UpdateParametersRequest:
    return pb.UpdateParametersRequest(
        parameters=pb.Parameters(**changes),
        update_mask=list(changes),
        changed_by=changed_by,
        reason=reason,
    )


@dataclass(frozen=True)
class ParameterPreview(OffPolicyEstimate):
    """A candidate parameter change judged on the logs before it ships: the off-policy
    estimate (clicks per impression, logged and estimated) and users' top lists."""

    users: tuple[UserPreview, ...]
    """Top lists before and after the change."""


def preview_parameters_request(
    changes: Mapping[str, Any], hours: float, sample: int, users: Sequence[str]
) -> pb.PreviewParametersRequest:
    return pb.PreviewParametersRequest(
        parameters=pb.Parameters(**changes) if changes else None,
        update_mask=list(changes),
        hours=hours,
        sample=sample,
        user_ids=list(users),
    )


def preview_from_proto(response: pb.PreviewParametersResponse) -> ParameterPreview:
    return ParameterPreview(
        **{f.name: getattr(response, f.name) for f in fields(OffPolicyEstimate)},
        users=tuple(
            UserPreview(u.user_id, tuple(u.before), tuple(u.after)) for u in response.users
        ),
    )


def _scored_items(items: Iterable[pb.ScoredItem]) -> tuple[ScoredItem, ...]:
    return tuple(
        ScoredItem(
            i.item_id,
            i.score,
            dict(i.components),
            tuple(i.because_item_ids),
            i.propensity,
            i.because_query,
        )
        for i in items
    )


def similar_from_proto(response: pb.SimilarItemsResponse) -> SimilarList:
    return SimilarList(
        items=_scored_items(response.items),
        degraded=response.degraded,
        variant=response.variant,
        parameter_version=response.parameter_version,
    )


def recommendation_from_proto(response: pb.RecommendResponse) -> Recommendation:
    return Recommendation(
        recommendation_id=response.recommendation_id,
        items=_scored_items(response.items),
        model_version=response.model_version,
        degraded=response.degraded,
        variant=response.variant,
        parameter_version=response.parameter_version,
    )


def parameters_from_proto(version: pb.ParameterVersion) -> dict[str, Any]:
    """A parameter version as a plain dict (values under "parameters")."""
    params = version.parameters
    return {
        "version": version.version,
        "parameters": _fields(params, [f.name for f in pb.Parameters.DESCRIPTOR.fields]),
        "changed_by": version.changed_by,
        "reason": version.reason,
        "created_at": version.created_at.ToDatetime(tzinfo=UTC),
    }


def channel_credentials(tls: bool, tls_root_cert: bytes | None) -> grpc.ChannelCredentials | None:
    """TLS credentials when asked for (``tls_root_cert``: PEM roots to trust instead of the
    system's, e.g. a private CA); None means a plaintext channel."""
    if not tls and tls_root_cert is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=tls_root_cert)


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


# gRPC caps a retry policy at five attempts (gRFC A6).
MAX_ATTEMPTS = 5


def channel_options(retries: int) -> list[tuple[str, Any]]:
    """Channel options that make gRPC itself retry UNAVAILABLE, for both clients.

    The retry policy is gRPC's own (service config, gRFC A6): up to ``retries`` more
    attempts with exponential backoff from 0.1 s to 2 s, inside the call's one deadline.
    Only UNAVAILABLE is retried: LogFeedback is idempotent on event ids, every other call
    is a read or an idempotent write."""
    if retries <= 0:
        return [("grpc.enable_retries", 0)]
    policy = {
        "maxAttempts": min(retries + 1, MAX_ATTEMPTS),
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    config = {
        "methodConfig": [
            {
                "name": [{"service": "recsys.v1.Recommender"}, {"service": "recsys.v1.Admin"}],
                "retryPolicy": policy,
            }
        ]
    }
    return [("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(config))]


def create_experiment_request(
    name: str, variants: Sequence[Variant], changed_by: str, reason: str
) -> pb.CreateExperimentRequest:
    return pb.CreateExperimentRequest(
        name=name,
        variants=[
            pb.Variant(
                name=v.name,
                share=v.share,
                parameters=pb.Parameters(**v.overrides),
                update_mask=list(v.overrides),
            )
            for v in variants
        ],
        changed_by=changed_by,
        reason=reason,
    )


def experiment_from_proto(message: pb.Experiment) -> dict[str, Any]:
    """An experiment as a plain dict; each variant's "overrides" are the masked fields."""
    return {
        "name": message.name,
        "status": message.status,
        "changed_by": message.changed_by,
        "reason": message.reason,
        "created_at": message.created_at.ToDatetime(tzinfo=UTC),
        "variants": [
            Variant(v.name, v.share, _fields(v.parameters, v.update_mask)) for v in message.variants
        ],
    }


def _fields(message: pb.Parameters, names: Iterable[str]) -> dict[str, Any]:
    """The named fields of a Parameters message as plain values (lists for repeated)."""
    repeated = {f.name for f in pb.Parameters.DESCRIPTOR.fields if f.is_repeated}
    return {
        name: list(getattr(message, name)) if name in repeated else getattr(message, name)
        for name in names
    }
