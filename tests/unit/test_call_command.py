"""`recsys call` without a server: method lookup and JSON requests."""

from __future__ import annotations

import pytest
import typer
from recsys.v1 import recsys_pb2 as pb

from serving.call import find_method, methods, request_message


def test_every_rpc_of_the_proto_is_listed() -> None:
    expected = {
        f"{service.full_name}/{method.name}"
        for service in pb.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert set(methods()) == expected
    assert "recsys.v1.Recommender/Recommend" in expected


@pytest.mark.parametrize(
    "name",
    ["recsys.v1.Admin/GetParameters", "recsys.v1.Admin.GetParameters", "Admin/GetParameters"],
)
def test_a_method_is_found_by_full_or_short_name(name: str) -> None:
    assert find_method(name).full_name == "recsys.v1.Admin.GetParameters"


def test_an_unknown_method_names_the_known_ones() -> None:
    with pytest.raises(typer.BadParameter, match=r"recsys\.v1\.Recommender/Recommend"):
        find_method("recsys.v1.Recommender/Nope")


def test_json_takes_proto_and_camel_case_names() -> None:
    method = find_method("recsys.v1.Recommender/Recommend")
    snake = request_message(method, '{"user_id": "ana", "k": 5, "exclude_item_ids": ["x"]}')
    camel = request_message(method, '{"userId": "ana", "k": 5, "excludeItemIds": ["x"]}')
    assert snake == camel == pb.RecommendRequest(user_id="ana", k=5, exclude_item_ids=["x"])
    assert request_message(method, "") == pb.RecommendRequest()


def test_bad_json_is_a_usage_error() -> None:
    method = find_method("recsys.v1.Recommender/Recommend")
    with pytest.raises(typer.BadParameter, match=r"-d: .*no_such_field"):
        request_message(method, '{"no_such_field": 1}')
