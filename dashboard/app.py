"""Operator dashboard: live engagement, recommendation latency and the ranking parameters.

Run with ``streamlit run dashboard/app.py`` (``make run`` starts it with the rest of the
platform). Reads PostgreSQL at ``RECSYS_DATABASE_URL``; refreshes every few seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# `streamlit run` puts only dashboard/ on sys.path; the repository root makes
# `dashboard.queries` importable the same way in the app, in tests and in the image.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import altair as alt  # noqa: E402
import pandas as pd  # noqa: E402
import psycopg  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import queries  # noqa: E402
from serving.config import load_settings  # noqa: E402

REFRESH_S = 5
HISTORY_ROWS = 20
# Windows longer than SLOW_WINDOW_S are read at most every SLOW_WINDOW_TTL_S seconds.
# (A comment, not a string: Streamlit's "magic" would print a bare string on the page.)
SLOW_WINDOW_S = 3600
SLOW_WINDOW_TTL_S = 60


@st.cache_resource(show_spinner=False)
def _connect(url: str) -> psycopg.Connection[Any]:
    # One connection shared by every browser session (psycopg serialises its use);
    # autocommit so that no read ever leaves a transaction open between refreshes.
    return psycopg.connect(url, autocommit=True, connect_timeout=5, application_name="dashboard")


def _connection(url: str) -> psycopg.Connection[Any]:
    conn = _connect(url)
    if conn.closed or conn.broken:
        # The database restarted: drop the dead connection and open a new one.
        _connect.clear()
        conn = _connect(url)
    return conn


def _database_url() -> str | None:
    try:
        settings = load_settings()
    except ValueError as error:
        st.error(f"The RECSYS_* settings are invalid: {error}")
        return None
    if settings.database_url is None:
        st.error(
            "No database configured: set RECSYS_DATABASE_URL to the platform's PostgreSQL URL "
            "(e.g. `postgresql://user:password@host:5432/recsys`), or start the whole "
            "platform with `make run`, which sets it for the dashboard."
        )
        return None
    return settings.database_url.get_secret_value()


def _count(value: float) -> str:
    return f"{int(value):,}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _engagement_chart(per_minute: pd.DataFrame) -> alt.LayerChart:
    base = alt.Chart(per_minute).encode(x=alt.X("minute:T", title="minute (UTC)"))
    impressions = base.mark_line(color="#4c78a8").encode(
        y=alt.Y(
            "impressions:Q", title="impressions per minute", axis=alt.Axis(titleColor="#4c78a8")
        ),
        tooltip=["minute:T", "impressions:Q", "clicks:Q"],
    )
    ctr = base.mark_line(color="#f58518", point=True).encode(
        y=alt.Y("ctr:Q", title="CTR", axis=alt.Axis(format="%", titleColor="#f58518")),
        tooltip=["minute:T", alt.Tooltip("ctr:Q", format=".2%")],
    )
    # Two y axes: impressions are counts, CTR a share.
    layered: alt.LayerChart = alt.layer(impressions, ctr).resolve_scale(y="independent")
    return layered


Snapshot = tuple[pd.DataFrame, dict[str, float], dict[str, float | None]]


def _read(conn: psycopg.Connection[Any], window_s: int) -> Snapshot:
    per_minute = queries.engagement_per_minute(conn, window_s)
    return (
        per_minute,
        queries.summary(conn, window_s, per_minute),
        queries.latency(conn, window_s),
    )


@st.cache_data(ttl=SLOW_WINDOW_TTL_S, show_spinner=False)
def _read_slow(url: str, window_s: int) -> Snapshot:
    # Long windows scan many rows: read them at most once a minute, shared by all
    # sessions, instead of on every refresh of every browser tab.
    return _read(_connection(url), window_s)


def _show_engagement(per_minute: pd.DataFrame, totals: dict[str, float]) -> None:
    columns = st.columns(6)
    columns[0].metric("Impressions", _count(totals["impressions"]))
    columns[1].metric("Clicks", _count(totals["clicks"]), help="attributed to an impression")
    columns[2].metric(
        "CTR",
        f"{totals['ctr']:.2%}",
        help="attributed clicks / impressions (same recommendation and item, within 30 min)",
    )
    columns[3].metric("Likes", _count(totals["likes"]))
    columns[4].metric("Purchases", _count(totals["purchases"]))
    columns[5].metric("Active users", _count(totals["active_users"]))
    if totals["impressions"] == 0 and totals["events"] == 0:
        st.info(
            "No traffic yet in this window. Recommendations and feedback appear here as "
            "soon as clients (or the demo simulator started by `make run`) call the API."
        )
        return
    st.caption(f"Conversion (attributed purchases / impressions): {totals['conversion']:.2%}")
    st.altair_chart(_engagement_chart(per_minute), width="stretch")


def _show_latency(stats: dict[str, float | None]) -> None:
    st.subheader("Serving")
    columns = st.columns(4)
    columns[0].metric("Recommendations", _count(stats["recommendations"] or 0))
    columns[1].metric("Latency p50", _ms(stats["p50_ms"]))
    columns[2].metric("Latency p99", _ms(stats["p99_ms"]))
    columns[3].metric(
        "Degraded",
        f"{stats['degraded_share'] or 0.0:.1%}",
        help="answered from the popularity/freshness fallback (Triton unreachable or late)",
    )


def _show_parameters(conn: psycopg.Connection[Any]) -> None:
    st.subheader("Ranking parameters")
    current = queries.current_parameters(conn)
    if current is None:
        st.info("No parameter version yet: the orchestrator writes version 1 when it starts.")
        return
    st.markdown(
        f"**Version {current['version']}**, by {current['changed_by']} at "
        f"{current['created_at']:%Y-%m-%d %H:%M:%S %Z}: {current['reason']}"
    )
    values = pd.DataFrame(
        # Strings: the values mix floats, ints and booleans, which one Arrow column cannot.
        [(name, str(value)) for name, value in sorted(current["parameters"].items())],
        columns=["parameter", "value"],
    )
    left, right = st.columns([1, 2])
    with left:
        st.dataframe(values)
    with right:
        st.caption("Recent versions")
        st.dataframe(queries.parameter_history(conn, HISTORY_ROWS))


@st.fragment(run_every=REFRESH_S)
def live(url: str, window_s: int) -> None:
    """The auto-refreshing part of the page: reruns alone every ``REFRESH_S`` seconds."""
    try:
        conn = _connection(url)
        if window_s > SLOW_WINDOW_S:
            per_minute, totals, serving = _read_slow(url, window_s)
        else:
            per_minute, totals, serving = _read(conn, window_s)
        _show_engagement(per_minute, totals)
        _show_latency(serving)
        _show_parameters(conn)
    except psycopg.Error as error:
        # Keep the page up through a database restart; the next refresh reconnects.
        _connect.clear()
        st.warning(f"Cannot read the database right now ({type(error).__name__}); retrying.")
    every = SLOW_WINDOW_TTL_S if window_s > SLOW_WINDOW_S else REFRESH_S
    st.caption(f"Traffic figures refresh every {every} s, parameters every {REFRESH_S} s.")


def main() -> None:
    """Render the page."""
    st.set_page_config(page_title="Recsys operations", layout="wide")
    st.title("Recommendations: live operations")
    url = _database_url()
    if url is None:
        return
    label = st.radio("Window", list(queries.WINDOWS), horizontal=True, index=1)
    live(url, queries.WINDOWS[label or "Last hour"])


main()
