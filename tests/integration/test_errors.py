"""Status codes over a real channel: bad input is INVALID_ARGUMENT naming the field and
writes nothing; admin calls need the token."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
import psycopg
import pytest
from recsys.v1 import recsys_pb2 as pb
from recsys.v1 import recsys_pb2_grpc as pb_grpc

from tests.integration.platform import ADMIN_TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stubs(platform):
    with grpc.insecure_channel(platform.target) as channel:
        yield pb_grpc.RecommenderStub(channel), pb_grpc.AdminStub(channel)


def some_item(platform) -> str:
    with psycopg.connect(platform.url) as conn:
        return conn.execute(
            "SELECT item_id FROM items WHERE deleted_at IS NULL ORDER BY item_id LIMIT 1"
        ).fetchone()[0]


def status_of(call, request, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=10, **kwargs)
    return error.value.code(), error.value.details()


def feedback(**fields) -> pb.LogFeedbackRequest:
    values = dict(event_id=str(uuid.uuid4()), user_id="u-bad", item_id="missing", type=1)
    return pb.LogFeedbackRequest(events=[pb.FeedbackEvent(**(values | fields))])


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.RecommendRequest(user_id="u", k=0), "k"),
        (pb.RecommendRequest(user_id="u", k=1001), "k"),
        (pb.RecommendRequest(user_id="", k=5), "user_id"),
        (pb.RecommendRequest(user_id="x" * 257, k=5), "user_id"),
    ],
)
def test_bad_recommend_requests(stubs, request_, field):
    code, details = status_of(stubs[0].Recommend, request_)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field)


def test_bad_feedback_is_rejected_whole_and_writes_nothing(platform, stubs):
    good = some_item(platform)
    user = f"user-{uuid.uuid4()}"
    cases = {
        "events[1].item_id": [dict(item_id=good), dict(item_id="no-such-item")],
        "events[0].type": [dict(item_id=good, type=0)],
        "events[0].event_id": [dict(item_id=good, event_id="")],
        "events[0].timestamp": [
            dict(
                item_id=good,
                timestamp=pb.FeedbackEvent().timestamp.__class__(
                    seconds=int(datetime.now(UTC).timestamp()) + 86400
                ),
            )
        ],
    }
    for field, events in cases.items():
        request = pb.LogFeedbackRequest(
            events=[feedback(user_id=user, **e).events[0] for e in events]
        )
        code, details = status_of(stubs[0].LogFeedback, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, field
        assert details.startswith(field), details
    with psycopg.connect(platform.url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM events WHERE user_id = %s", (user,)
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM user_state WHERE subject = %s", (user,)
        ).fetchone() == (0,)


def test_too_many_events_in_one_call(platform, stubs):
    item = some_item(platform)
    request = pb.LogFeedbackRequest(
        events=[
            pb.FeedbackEvent(event_id=str(i), user_id="u", item_id=item, type=1)
            for i in range(10_001)
        ]
    )
    code, details = status_of(stubs[0].LogFeedback, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("events")


def test_items_without_text_are_rejected(platform, stubs):
    request = pb.UpsertItemsRequest(items=[pb.Item(item_id="empty-text", title=" ")])
    code, details = status_of(stubs[0].UpsertItems, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("items[0].title")
    with psycopg.connect(platform.url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM items WHERE item_id = 'empty-text'"
        ).fetchone() == (0,)


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong"),)])
def test_admin_calls_need_the_token(stubs, metadata):
    code, _ = status_of(stubs[1].GetParameters, pb.GetParametersRequest(), metadata=metadata)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    request = pb.UpdateParametersRequest(changed_by="x", reason="y", update_mask=["exclude_seen"])
    code, _ = status_of(stubs[1].UpdateParameters, request, metadata=metadata)
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_bad_parameter_values_name_the_field(stubs):
    metadata = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    request = pb.UpdateParametersRequest(
        parameters=pb.Parameters(candidate_pool_size=1),
        update_mask=["candidate_pool_size"],
        changed_by="ops",
        reason="too small",
    )
    code, details = status_of(stubs[1].UpdateParameters, request, metadata=metadata)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("parameters.candidate_pool_size")
    request = pb.UpdateParametersRequest(update_mask=["exclude_seen"], changed_by="ops")
    code, details = status_of(stubs[1].UpdateParameters, request, metadata=metadata)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("reason")
