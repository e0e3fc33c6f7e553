"""The request guards of the API, in-process: token buckets and lenient decoding."""

from __future__ import annotations

import pytest
from recsys.v1 import recsys_pb2 as pb

from serving.api import decoding
from serving.api.ratelimit import TokenBuckets, client_key
from serving.core.errors import InvalidArgument


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_buckets_allow_the_burst_then_the_rate_per_key() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=100, burst=500, clock=clock)
    assert buckets.allow("a", 500)
    assert not buckets.allow("a", 1)
    assert buckets.allow("b", 500), "another client has its own bucket"
    clock.now = 1.0
    assert buckets.allow("a", 100) and not buckets.allow("a", 1)
    clock.now = 100.0
    assert buckets.allow("a", 500) and not buckets.allow("a", 1), "never more than the burst"


def test_a_refused_call_takes_nothing_and_zero_rate_is_unlimited() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=10, clock=clock)
    assert not buckets.allow("a", 11)
    assert buckets.allow("a", 10)
    assert TokenBuckets(rate=0, burst=1).allow("a", 10**9)


def test_idle_clients_are_forgotten_when_there_are_too_many() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=1, max_keys=2, clock=clock)
    buckets.allow("a", 1)
    buckets.allow("b", 1)
    clock.now = 5.0
    buckets.allow("c", 1)
    assert len(buckets._buckets) == 1


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("ipv4:10.0.0.7:51234", "ipv4:10.0.0.7"),
        ("ipv6:[::1]:4000", "ipv6:[::1]"),
        ("unix:/tmp/sock", "unix:/tmp/sock"),
    ],
)
def test_a_client_is_its_address_without_the_port(peer: str, key: str) -> None:
    assert client_key(peer) == key


def test_undecodable_bytes_become_invalid_argument() -> None:
    parse = decoding.lenient(pb.RecommendRequest.FromString)
    with pytest.raises(InvalidArgument, match=r"^request: not a valid message"):
        decoding.check(parse(b"\xff\xff\xff"))
    message = parse(pb.RecommendRequest(user_id="u", k=3).SerializeToString())
    decoding.check(message)
    assert message.user_id == "u"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.RecommendRequest(user_id="a\x00b"), "user_id"),
        (pb.RecommendRequest(user_id="u", context={"k": "v\x00"}), "context['k']"),
        (pb.RecommendRequest(user_id="u", exclude_item_ids=["x", "\x00"]), "exclude_item_ids[1]"),
        (
            pb.UpsertItemsRequest(items=[pb.Item(item_id="i", title="t"), pb.Item(tags=["\x00"])]),
            "items[1].tags[0]",
        ),
    ],
)
def test_nul_characters_are_named_by_field(request_, field: str) -> None:
    parsed = decoding.lenient(type(request_).FromString)(request_.SerializeToString())
    with pytest.raises(InvalidArgument) as error:
        decoding.check(parsed)
    assert error.value.field == field
