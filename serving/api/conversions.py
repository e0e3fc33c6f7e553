"""Proto <-> domain conversions, in one place (the domain never sees pb2 types)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from google.protobuf.timestamp_pb2 import Timestamp
from recsys.v1 import recsys_pb2 as pb

from serving.core.domain import (
    EventType,
    FeedbackEvent,
    Item,
    Recommendation,
    RecommendQuery,
    ScoredItem,
    SimilarList,
    SimilarQuery,
)
from serving.core.errors import InvalidArgument
from serving.core.experiments import ExperimentRecord, Variant
from serving.core.parameters import Parameters, ParameterVersion, check_mask

if TYPE_CHECKING:
    from serving.app.preview import Preview


def _datetime(field: str, stamp: Timestamp) -> datetime:
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as error:
        raise InvalidArgument(field, f"invalid timestamp ({error})") from None


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def query_from_proto(request: pb.RecommendRequest) -> RecommendQuery:
    return RecommendQuery(
        user_id=request.user_id,
        session_id=request.session_id,
        k=request.k,
        exclude_item_ids=frozenset(request.exclude_item_ids),
        context=dict(request.context),
        query=request.query if request.HasField("query") else None,
    )


def similar_from_proto(request: pb.SimilarItemsRequest) -> SimilarQuery:
    anchor = request.WhichOneof("anchor")
    return SimilarQuery(
        k=request.k,
        item_id=request.item_id if anchor == "item_id" else None,
        text=request.text if anchor == "text" else None,
        user_id=request.user_id,
        session_id=request.session_id,
        exclude_item_ids=frozenset(request.exclude_item_ids),
        context=dict(request.context),
    )


def _scored_to_proto(items: Iterable[ScoredItem]) -> list[pb.ScoredItem]:
    return [
        pb.ScoredItem(
            item_id=item.item_id,
            score=item.score,
            components=item.components,
            because_item_ids=item.because_item_ids,
            propensity=item.propensity,
            because_query=item.because_query,
        )
        for item in items
    ]


def similar_to_proto(similar: SimilarList) -> pb.SimilarItemsResponse:
    return pb.SimilarItemsResponse(
        items=_scored_to_proto(similar.items),
        degraded=similar.degraded,
        variant=similar.variant,
        parameter_version=similar.parameter_version,
    )


def recommendation_to_proto(rec: Recommendation) -> pb.RecommendResponse:
    return pb.RecommendResponse(
        recommendation_id=rec.recommendation_id,
        items=_scored_to_proto(rec.items),
        model_version=rec.model_version,
        degraded=rec.degraded,
        variant=rec.variant,
        parameter_version=rec.parameter_version,
    )


def events_from_proto(request: pb.LogFeedbackRequest, now: datetime) -> list[FeedbackEvent]:
    """Events of a call; a missing timestamp means "now"."""
    events = []
    for index, event in enumerate(request.events):
        try:
            event_type = EventType(event.type)
        except ValueError:
            raise InvalidArgument(f"events[{index}].type", f"unknown value {event.type}") from None
        occurred = (
            _datetime(f"events[{index}].timestamp", event.timestamp)
            if event.HasField("timestamp")
            else now
        )
        events.append(
            FeedbackEvent(
                event_id=event.event_id,
                user_id=event.user_id,
                session_id=event.session_id,
                item_id=event.item_id,
                type=event_type,
                occurred_at=occurred,
                recommendation_id=event.recommendation_id,
                value=event.value,
            )
        )
    return events


def _optional_datetime(message: pb.Item, field: str, index: int) -> datetime | None:
    if not message.HasField(field):
        return None
    return _datetime(f"items[{index}].{field}", getattr(message, field))


def items_from_proto(request: pb.UpsertItemsRequest) -> list[Item]:
    return [
        Item(
            item_id=item.item_id,
            title=item.title,
            description=item.description,
            categories=tuple(item.categories),
            tags=tuple(item.tags),
            published_at=_optional_datetime(item, "published_at", index),
            attributes=dict(item.attributes),
            available_from=_optional_datetime(item, "available_from", index),
            available_until=_optional_datetime(item, "available_until", index),
        )
        for index, item in enumerate(request.items)
    ]


def parameters_to_proto(parameters: Parameters) -> pb.Parameters:
    return pb.Parameters(**parameters.model_dump(mode="json"))


_REPEATED = {f.name for f in pb.Parameters.DESCRIPTOR.fields if f.is_repeated}


def _parameter(message: pb.Parameters, name: str) -> Any:
    value = getattr(message, name)
    return list(value) if name in _REPEATED else value


def parameters_from_proto(message: pb.Parameters, mask: Iterable[str] = ()) -> dict[str, Any]:
    """The values of the fields named in ``mask`` (all fields when empty); an unknown name
    is InvalidArgument."""
    return {
        name: _parameter(message, name) for name in (check_mask(mask) or Parameters.model_fields)
    }


def parameter_version_to_proto(version: ParameterVersion) -> pb.ParameterVersion:
    return pb.ParameterVersion(
        version=version.version,
        parameters=parameters_to_proto(version.parameters),
        changed_by=version.changed_by,
        reason=version.reason,
        created_at=_timestamp(version.created_at),
    )


def variants_from_proto(variants: Iterable[pb.Variant]) -> list[Variant]:
    result = []
    for index, variant in enumerate(variants):
        for name in variant.update_mask:
            if name not in Parameters.model_fields:
                raise InvalidArgument(
                    f"variants[{index}].update_mask", f"unknown parameter {name!r}"
                )
        overrides = (
            parameters_from_proto(variant.parameters, variant.update_mask)
            if variant.update_mask
            else {}
        )
        result.append(Variant(variant.name, variant.share, overrides))
    return result


def variant_to_proto(variant: Variant) -> pb.Variant:
    """A variant with its overrides as masked parameter fields."""
    return pb.Variant(
        name=variant.name,
        share=variant.share,
        parameters=pb.Parameters(**variant.overrides),
        update_mask=list(variant.overrides),
    )


def experiment_to_proto(record: ExperimentRecord) -> pb.Experiment:
    return pb.Experiment(
        name=record.experiment.name,
        variants=[variant_to_proto(v) for v in record.experiment.variants],
        status=record.status,
        changed_by=record.changed_by,
        reason=record.reason,
        created_at=_timestamp(record.created_at),
    )


def preview_to_proto(preview: Preview) -> pb.PreviewParametersResponse:
    return pb.PreviewParametersResponse(
        **dataclasses.asdict(preview.estimate),
        users=[
            pb.UserPreview(user_id=u.user_id, before=u.before, after=u.after) for u in preview.users
        ],
    )
