"""The dashboard's Altair charts."""

from __future__ import annotations

import altair as alt
import pandas as pd

BLUE, ORANGE, GREY = "#4c78a8", "#f58518", "#888888"


def _change_rules(changes: pd.DataFrame) -> alt.Chart:
    """A vertical rule at every parameter change, its version, author and reason on hover."""
    rules: alt.Chart = (
        alt.Chart(changes)
        .mark_rule(color=GREY, strokeDash=[4, 3])
        .encode(
            x="created_at:T",
            tooltip=[
                alt.Tooltip("version:Q", title="parameter version"),
                alt.Tooltip("created_at:T", format="%Y-%m-%d %H:%M:%S"),
                "by:N",
                "reason:N",
            ],
        )
    )
    return rules


def engagement(series: pd.DataFrame, changes: pd.DataFrame) -> alt.LayerChart:
    """Impressions (bars) and CTR (line) per bucket, parameter changes marked."""
    base = alt.Chart(series).encode(x=alt.X("bucket:T", title="time (UTC)"))
    impressions = base.mark_bar(color=BLUE, opacity=0.5).encode(
        y=alt.Y("impressions:Q", title="impressions", axis=alt.Axis(titleColor=BLUE)),
        tooltip=["bucket:T", "impressions:Q", "attributed_clicks:Q"],
    )
    ctr = base.mark_line(color=ORANGE, point=True).encode(
        y=alt.Y("ctr:Q", title="CTR", axis=alt.Axis(format="%", titleColor=ORANGE)),
        tooltip=["bucket:T", alt.Tooltip("ctr:Q", format=".2%")],
    )
    # Two y axes: impressions are counts, CTR a share; the rules share the time axis.
    counts = alt.LayerChart(layer=[impressions, ctr]).resolve_scale(y="independent")
    return alt.LayerChart(layer=[counts, _change_rules(changes)])


def events(series: pd.DataFrame, changes: pd.DataFrame, kinds: list[str]) -> alt.LayerChart:
    """Event counts of ``kinds`` per bucket, one line each, parameter changes marked."""
    long = series.melt(id_vars="bucket", value_vars=kinds, var_name="event", value_name="count")
    lines = (
        alt.Chart(long)
        .mark_line()
        .encode(
            x=alt.X("bucket:T", title="time (UTC)"),
            y=alt.Y("count:Q", title="events"),
            color=alt.Color("event:N", title=None),
            tooltip=["bucket:T", "event:N", "count:Q"],
        )
    )
    return alt.LayerChart(layer=[lines, _change_rules(changes)])


def rate_with_interval(data: pd.DataFrame, rate: str, title: str) -> alt.LayerChart:
    """Per variant: ``rate`` as a point with its ``<rate>_low``..``<rate>_high`` interval."""
    base = alt.Chart(data).encode(y=alt.Y("variant:N", title=None))
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X(f"{rate}_low:Q", title=title, axis=alt.Axis(format="%")),
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


def bars(data: pd.DataFrame, category: str, value: str, title: str) -> alt.Chart:
    """Horizontal bars of ``value`` per ``category``, largest first."""
    chart: alt.Chart = (
        alt.Chart(data)
        .mark_bar(color=BLUE)
        .encode(
            x=alt.X(f"{value}:Q", title=title),
            y=alt.Y(f"{category}:N", sort="-x", title=None),
            tooltip=list(data.columns),
        )
    )
    return chart


def line(data: pd.DataFrame, x: str, y: str, title: str) -> alt.Chart:
    """One series over time."""
    chart: alt.Chart = (
        alt.Chart(data)
        .mark_line(point=True, color=BLUE)
        .encode(x=alt.X(f"{x}:T", title=None), y=alt.Y(f"{y}:Q", title=title), tooltip=[x, y])
    )
    return chart
