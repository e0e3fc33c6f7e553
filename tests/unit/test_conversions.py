from datetime import UTC, datetime

import pytest
from recsys.v1 import recsys_pb2 as pb

from serving.api import conversions as convert
from serving.client import types as sdk
from serving.core.domain import EventType, Item, Recommendation, ScoredItem
from serving.core.errors import InvalidArgument
from serving.core.parameters import Parameters, ParameterVersion

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def test_sdk_events_round_trip_through_the_proto():
    event = sdk.Event(
        item_id="i1", type="click", user_id="u1", recommendation_id="r1", timestamp=NOW
    )
    [domain] = convert.events_from_proto(sdk.feedback_request([event]), NOW)
    assert (domain.event_id, domain.item_id, domain.type) == (event.event_id, "i1", EventType.CLICK)
    assert domain.occurred_at == NOW and domain.subject == "u1"


def test_missing_timestamp_means_now_and_unknown_type_is_rejected():
    request = pb.LogFeedbackRequest(events=[pb.FeedbackEvent(event_id="e", type=1)])
    assert convert.events_from_proto(request, NOW)[0].occurred_at == NOW
    request = pb.LogFeedbackRequest(events=[pb.FeedbackEvent(event_id="e", type=99)])
    with pytest.raises(InvalidArgument, match=r"events\[0\]\.type"):
        convert.events_from_proto(request, NOW)


def test_items_round_trip():
    item = Item("i1", "Title", "Desc", ("jazz",), ("live",), NOW, {"price": "3"})
    [back] = convert.items_from_proto(sdk.upsert_request([item]))
    assert back == item


def test_recommendation_to_proto_and_back_through_the_sdk():
    rec = Recommendation(
        "r1", (ScoredItem("i1", 0.5, {"relevance": 0.4}, ("h1",)),), "3", False, "control", 7
    )
    back = sdk.recommendation_from_proto(convert.recommendation_to_proto(rec))
    assert back.item_ids == ["i1"] and back.items[0].because_item_ids == ("h1",)
    assert back.items[0].components["relevance"] == pytest.approx(0.4)
    assert (back.model_version, back.parameter_version) == ("3", 7)


def test_parameter_versions_round_trip():
    parameters = Parameters(popularity_weight=0.3, exclude_categories=("jazz", "rock"))
    version = ParameterVersion(4, parameters, "ana", "why", NOW)
    back = sdk.parameters_from_proto(convert.parameter_version_to_proto(version))
    assert back["version"] == 4 and back["changed_by"] == "ana"
    assert back["parameters"]["exclude_categories"] == ["jazz", "rock"]
    assert Parameters.model_validate(back["parameters"]) == parameters
    assert convert.parameters_from_proto(
        convert.parameters_to_proto(parameters), ["freshness_weight"]
    ) == {"freshness_weight": parameters.freshness_weight}


def test_an_unknown_or_empty_mask_name_is_invalid_argument():
    for mask in ([""], ["no_such_parameter"]):
        with pytest.raises(InvalidArgument, match=r"^update_mask"):
            convert.parameters_from_proto(pb.Parameters(), mask)
