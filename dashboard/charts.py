"""The dashboard's Altair charts.

Axes say what they hold: counts as whole numbers ("12k" past a thousand), shares as
percentages, times in UTC to the minute. A series with nothing in it gets a fixed [0, 1]
scale: Vega's default for an all-zero domain is one tick labelled ``0.000000``.
"""

from __future__ import annotations

from collections.abc import Iterable

import altair as alt
import pandas as pd

BLUE, ORANGE, GREY = "#4c78a8", "#f58518", "#888888"
COUNT = "~s"
"""d3 format of counts: 0, 7, 950, 1.2k, 3.4M."""
SHARE = "~%"
"""d3 format of shares: 0%, 2.5%, 100%."""
DECIMAL = ",~r"
"""d3 format of other quantities (MiB, milliseconds): 0, 0.25, 1,250."""
DAY_S = 86_400


def _peak(values: Iterable[float]) -> float:
    finite = [float(v) for v in values if pd.notna(v)]
    return max(finite, default=0.0)


def _scale(values: Iterable[float]) -> alt.Scale:
    """From zero; [0, 1] when there is nothing above zero (see the module docstring)."""
    return alt.Scale(zero=True) if _peak(values) > 0 else alt.Scale(domain=[0, 1])


def count_axis(title: str, title_color: str | None = None) -> alt.Axis:
    """An axis of counts: whole-number ticks only."""
    if title_color is None:
        return alt.Axis(title=title, format=COUNT, tickMinStep=1)
    return alt.Axis(title=title, format=COUNT, tickMinStep=1, titleColor=title_color)


def _time_format(data: pd.DataFrame, field: str) -> tuple[str, str]:
    """(axis, tooltip) formats of a time field: days for dates, the minute within a day,
    the weekday and minute beyond one."""
    times = pd.to_datetime(data[field], utc=True)
    if len(times) and (times == times.dt.normalize()).all():
        return "%b %d", "%Y-%m-%d"
    span = (times.max() - times.min()).total_seconds() if len(times) else 0.0
    return ("%a %H:%M" if span > DAY_S else "%H:%M"), "%Y-%m-%d %H:%M"


def _time(data: pd.DataFrame, field: str, title: str | None, plotted: str | None = None) -> alt.X:
    """A UTC time axis for ``field`` of ``data`` (or for ``plotted``, a field of another
    layer on the same axis: every layer must carry the same axis, or Vega-Lite falls back
    to its own labels)."""
    label, _ = _time_format(data, field)
    return alt.X(
        f"{plotted or field}:T",
        title=title,
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(format=label, labelAngle=0),
    )


def _when(data: pd.DataFrame, field: str) -> alt.Tooltip:
    """The tooltip line of a time field, in UTC."""
    _, label = _time_format(data, field)
    # (A UTC time unit formats in UTC; Vega-Lite 5 has no "utc" formatType.)
    if "%H" in label:
        return alt.Tooltip(
            f"{field}:T", timeUnit="utcyearmonthdatehoursminutes", format=label, title="UTC"
        )
    return alt.Tooltip(f"{field}:T", timeUnit="utcyearmonthdate", format=label, title="UTC")


def _change_rules(changes: pd.DataFrame, series: pd.DataFrame) -> alt.Chart:
    """A vertical rule at every parameter change, its version, author and reason on hover
    (on the time axis of ``series``)."""
    rules: alt.Chart = (
        alt.Chart(changes)
        .mark_rule(color=GREY, strokeDash=[4, 3])
        .encode(
            x=_time(series, "bucket", "time (UTC)", plotted="created_at"),
            tooltip=[
                alt.Tooltip("version:Q", title="parameter version"),
                alt.Tooltip(
                    "created_at:T",
                    timeUnit="utcyearmonthdatehoursminutesseconds",
                    format="%Y-%m-%d %H:%M:%S",
                    title="UTC",
                ),
                "by:N",
                "reason:N",
            ],
        )
    )
    return rules


def engagement(series: pd.DataFrame, changes: pd.DataFrame) -> alt.LayerChart:
    """Impressions (bars) and CTR (line) per bucket, parameter changes marked."""
    base = alt.Chart(series).encode(x=_time(series, "bucket", "time (UTC)"))
    impressions = base.mark_bar(color=BLUE, opacity=0.5).encode(
        y=alt.Y(
            "impressions:Q",
            axis=count_axis("impressions", BLUE),
            scale=_scale(series["impressions"]),
        ),
        tooltip=[_when(series, "bucket"), "impressions:Q", "attributed_clicks:Q"],
    )
    ctr = base.mark_line(color=ORANGE, point=True).encode(
        y=alt.Y(
            "ctr:Q",
            axis=alt.Axis(title="CTR", format=SHARE, titleColor=ORANGE),
            scale=_scale(series["ctr"]),
        ),
        tooltip=[_when(series, "bucket"), alt.Tooltip("ctr:Q", format=".2%")],
    )
    # Two y axes: impressions are counts, CTR a share; the rules share the time axis.
    counts = alt.LayerChart(layer=[impressions, ctr]).resolve_scale(y="independent")
    return alt.LayerChart(layer=[counts, _change_rules(changes, series)])


def events(series: pd.DataFrame, changes: pd.DataFrame, kinds: list[str]) -> alt.LayerChart:
    """Event counts of ``kinds`` per bucket, one line each, parameter changes marked."""
    long = series.melt(id_vars="bucket", value_vars=kinds, var_name="event", value_name="count")
    lines = (
        alt.Chart(long)
        .mark_line()
        .encode(
            x=_time(long, "bucket", "time (UTC)"),
            y=alt.Y("count:Q", axis=count_axis("events"), scale=_scale(long["count"])),
            color=alt.Color("event:N", title=None),
            tooltip=[_when(long, "bucket"), "event:N", "count:Q"],
        )
    )
    return alt.LayerChart(layer=[lines, _change_rules(changes, series)])


def rate_with_interval(data: pd.DataFrame, rate: str, title: str) -> alt.LayerChart:
    """Per variant: ``rate`` as a point with its ``<rate>_low``..``<rate>_high`` interval."""
    base = alt.Chart(data).encode(y=alt.Y("variant:N", title=None))
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X(
            f"{rate}_low:Q",
            axis=alt.Axis(title=title, format=SHARE),
            scale=_scale(data[f"{rate}_high"]),
        ),
        x2=f"{rate}_high:Q",
    )
    points = base.mark_point(filled=True, size=80).encode(
        x=f"{rate}:Q",
        tooltip=[
            "variant:N",
            alt.Tooltip(f"{rate}:Q", format=".3%"),
            alt.Tooltip(f"{rate}_low:Q", format=".3%", title="95% low"),
            alt.Tooltip(f"{rate}_high:Q", format=".3%", title="95% high"),
        ],
    )
    return alt.LayerChart(layer=[bars, points])


def bars(
    data: pd.DataFrame, category: str, value: str, title: str, value_format: str = COUNT
) -> alt.Chart:
    """Horizontal bars of ``value`` per ``category``, largest first (``value_format``:
    COUNT, or DECIMAL for a quantity that is not a count)."""
    axis = (
        count_axis(title) if value_format == COUNT else alt.Axis(title=title, format=value_format)
    )
    chart: alt.Chart = (
        alt.Chart(data)
        .mark_bar(color=BLUE)
        .encode(
            x=alt.X(
                f"{value}:Q",
                axis=axis,
                scale=_scale(data[value]),
            ),
            y=alt.Y(f"{category}:N", sort="-x", title=None),
            tooltip=list(data.columns),
        )
    )
    return chart


def line(data: pd.DataFrame, x: str, y: str, title: str) -> alt.Chart:
    """One count over time."""
    chart: alt.Chart = (
        alt.Chart(data)
        .mark_line(point=True, color=BLUE)
        .encode(
            x=_time(data, x, None),
            y=alt.Y(f"{y}:Q", axis=count_axis(title), scale=_scale(data[y])),
            tooltip=[_when(data, x), f"{y}:Q"],
        )
    )
    return chart
