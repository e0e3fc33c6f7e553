from datetime import UTC, datetime, timedelta

import pytest

from serving.config import InstanceKind, Settings, load_settings
from serving.core.domain import EventType, FeedbackEvent, Item, RecommendQuery
from serving.core.errors import InvalidArgument
from serving.core.parameters import Parameters, parse_parameters
from serving.core.validation import validate_events, validate_items, validate_query

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def test_settings_defaults_match_the_documented_ports():
    s = Settings()
    assert (s.grpc_port, s.dashboard_port) == (50051, 8501)
    assert (s.triton_http_port, s.triton_grpc_port, s.triton_metrics_port) == (8000, 8001, 8002)
    assert s.triton_instance_kind is InstanceKind.CPU


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RECSYS_GRPC_PORT", "50099")
    monkeypatch.setenv("RECSYS_TRITON_INSTANCE_KIND", "KIND_GPU")
    s = load_settings()
    assert s.grpc_port == 50099 and s.triton_instance_kind is InstanceKind.GPU


def test_unknown_settings_are_rejected(monkeypatch):
    monkeypatch.setenv("RECSYS_GRPC_PROT", "1")
    with pytest.raises(ValueError, match="RECSYS_GRPC_PROT"):
        load_settings()


@pytest.mark.parametrize(
    "values",
    [{"grpc_port": 0}, {"grpc_port": "x"}, {"log_level": "LOUD"}, {"dashboard_port": 50051}],
)
def test_invalid_settings_are_rejected(values):
    with pytest.raises(ValueError):
        Settings(**values)


def test_parameters_are_bounded_and_name_the_field():
    assert parse_parameters({}) == Parameters()
    with pytest.raises(InvalidArgument, match=r"parameters\.candidate_pool_size"):
        parse_parameters({"candidate_pool_size": 5})
    with pytest.raises(InvalidArgument, match=r"parameters\.bogus"):
        parse_parameters({"bogus": 1})


def event(**overrides):
    values = dict(
        event_id="e1",
        user_id="u1",
        session_id="",
        item_id="i1",
        type=EventType.CLICK,
        occurred_at=NOW,
    )
    return FeedbackEvent(**(values | overrides))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"event_id": ""}, "events[0].event_id"),
        ({"user_id": "", "session_id": ""}, "events[0].user_id"),
        ({"user_id": "u" * 257}, "events[0].user_id"),
        ({"item_id": ""}, "events[0].item_id"),
        ({"type": EventType.UNSPECIFIED}, "events[0].type"),
        ({"occurred_at": NOW + timedelta(hours=1)}, "events[0].timestamp"),
    ],
)
def test_bad_events_name_the_field(overrides, field):
    with pytest.raises(InvalidArgument) as error:
        validate_events([event(**overrides)], NOW)
    assert error.value.field == field


def test_event_batches_are_bounded():
    validate_events([event(user_id="", session_id="s1")], NOW)  # anonymous is fine
    with pytest.raises(InvalidArgument, match="events"):
        validate_events([], NOW)
    with pytest.raises(InvalidArgument, match="at most 10000"):
        validate_events([event(event_id=str(i)) for i in range(10_001)], NOW)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (RecommendQuery("u", "", 0), "k"),
        (RecommendQuery("u", "", 1001), "k"),
        (RecommendQuery("", "", 10), "user_id"),
        (RecommendQuery("u" * 300, "", 10), "user_id"),
        (RecommendQuery("u", "", 10, frozenset({""})), "exclude_item_ids"),
    ],
)
def test_bad_queries_name_the_field(query, field):
    with pytest.raises(InvalidArgument) as error:
        validate_query(query)
    assert error.value.field == field


def test_items_need_text_and_unique_ids():
    validate_items([Item("a", "A title")])
    with pytest.raises(InvalidArgument, match=r"items\[0\]\.title"):
        validate_items([Item("a", "  ", "")])
    with pytest.raises(InvalidArgument, match=r"items\[1\]\.item_id"):
        validate_items([Item("a", "x"), Item("a", "y")])


def test_month_boundaries_for_event_partitions():
    from serving.adapters.postgres.partitions import month_start

    assert month_start(datetime(2026, 12, 15, tzinfo=UTC)) == datetime(2026, 12, 1, tzinfo=UTC)
    assert month_start(datetime(2026, 12, 15, tzinfo=UTC), 1) == datetime(2027, 1, 1, tzinfo=UTC)


def test_availability_windows_must_end_after_they_start():
    later = NOW + timedelta(days=1)
    validate_items([Item("a", "t", available_from=NOW, available_until=later)])
    with pytest.raises(InvalidArgument, match=r"items\[0\]\.available_until"):
        validate_items([Item("a", "t", available_from=later, available_until=NOW)])
