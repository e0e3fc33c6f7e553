"""The dashboard's chart specs: count and share axes never print ``0.000000``, an empty
series gets a [0, 1] scale, and times are labelled in UTC at a sensible grain."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dashboard import charts


def _series(impressions: list[int], clicks: list[int]) -> pd.DataFrame:
    bucket = pd.date_range("2026-12-01 09:00", periods=len(impressions), freq="min", tz="UTC")
    data = pd.DataFrame({"bucket": bucket, "impressions": impressions, "attributed_clicks": clicks})
    data["ctr"] = data["attributed_clicks"] / data["impressions"].where(data["impressions"] > 0)
    for kind in ("clicks", "likes"):
        data[kind] = clicks
    return data


def _encodings(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every layer's encoding, depth first."""
    found = [spec["encoding"]] if "encoding" in spec else []
    for layer in spec.get("layer", []):
        found += _encodings(layer)
    return found


NO_CHANGES = pd.DataFrame(columns=["version", "created_at", "by", "reason"])


def test_an_all_zero_series_gets_whole_number_axes_from_zero_to_one() -> None:
    spec = charts.engagement(_series([0, 0, 0], [0, 0, 0]), NO_CHANGES).to_dict()
    impressions, ctr = (e["y"] for e in _encodings(spec)[:2])
    assert impressions["axis"]["format"] == charts.COUNT and impressions["axis"]["tickMinStep"] == 1
    assert impressions["scale"] == {"domain": [0, 1]}
    assert ctr["axis"]["format"] == charts.SHARE and ctr["scale"] == {"domain": [0, 1]}
    events = charts.events(_series([0, 0], [0, 0]), NO_CHANGES, ["clicks", "likes"]).to_dict()
    y = _encodings(events)[0]["y"]
    assert y["axis"]["format"] == charts.COUNT and y["scale"] == {"domain": [0, 1]}


def test_a_series_with_traffic_is_scaled_from_zero_to_its_data() -> None:
    spec = charts.engagement(_series([10, 40, 0], [1, 2, 0]), NO_CHANGES).to_dict()
    impressions, ctr = (e["y"] for e in _encodings(spec)[:2])
    assert impressions["scale"] == {"zero": True} and ctr["scale"] == {"zero": True}


def test_times_are_utc_to_the_minute_within_a_day_and_dates_as_days() -> None:
    x = _encodings(charts.engagement(_series([1, 2], [0, 0]), NO_CHANGES).to_dict())[0]["x"]
    assert x["scale"] == {"type": "utc"}
    assert x["axis"]["format"] == "%H:%M"
    week = pd.DataFrame(
        {
            "minute": pd.date_range("2026-11-24 09:30", periods=8, freq="D", tz="UTC"),
            "events": range(8),
        }
    )
    assert (
        charts.line(week, "minute", "events", "events").to_dict()["encoding"]["x"]["axis"]["format"]
        == "%a %H:%M"
    )
    days = pd.DataFrame({"day": pd.date_range("2026-11-01", periods=3, freq="D"), "n": [1, 0, 2]})
    assert (
        charts.line(days, "day", "n", "n").to_dict()["encoding"]["x"]["axis"]["format"] == "%b %d"
    )


def test_bars_of_a_quantity_that_is_not_a_count() -> None:
    sizes = pd.DataFrame({"table": ["events", "items"], "MiB": [0.25, 0.0]})
    x = charts.bars(sizes, "table", "MiB", "MiB", charts.DECIMAL).to_dict()["encoding"]["x"]
    assert x["axis"]["format"] == charts.DECIMAL and "tickMinStep" not in x["axis"]
    empty = pd.DataFrame({"category": ["a"], "impressions": [0]})
    bars = charts.bars(empty, "category", "impressions", "impressions").to_dict()["encoding"]
    assert bars["x"]["axis"]["format"] == charts.COUNT and bars["x"]["scale"] == {"domain": [0, 1]}
