"""Overview: engagement for a window, parameter changes marked, refreshed automatically."""

from __future__ import annotations

import psycopg
import streamlit as st

from dashboard import charts, resources
from dashboard.queries import engagement

REFRESH_S = 10


def _count(value: float) -> str:
    return f"{int(value):,}"


@st.fragment(run_every=REFRESH_S)
def live(window_s: int) -> None:
    """The auto-refreshing part of the page: reruns alone every ``REFRESH_S`` seconds."""
    try:
        conn = resources.connection()
        series = engagement.series(conn, window_s)
        totals = engagement.totals(conn, window_s, series)
        changes = engagement.parameter_changes(conn, window_s)
        fresh = engagement.freshness(conn)
    except psycopg.Error as error:
        resources.database_lost(error)
        return
    top = st.columns(4)
    top[0].metric("Impressions", _count(totals["impressions"]))
    top[1].metric("Clicks", _count(totals["attributed_clicks"]), help="attributed to an impression")
    top[2].metric(
        "CTR",
        f"{totals['ctr']:.2%}",
        help="attributed clicks / impressions (same recommendation and item, within 30 min)",
    )
    top[3].metric(
        "Conversion", f"{totals['conversion']:.2%}", help="attributed purchases / impressions"
    )
    bottom = st.columns(5)
    bottom[0].metric("Likes", _count(totals["likes"]))
    bottom[1].metric("Add to cart", _count(totals["add_to_carts"]))
    bottom[2].metric("Purchases", _count(totals["purchases"]))
    bottom[3].metric("Active users", _count(totals["active_users"]))
    bottom[4].metric("Active sessions", _count(totals["active_sessions"]))
    kinds = ["clicks", "likes", "add_to_carts", "purchases", "dislikes", "skips"]
    shown, feedback = int(series["impressions"].sum()), int(series[kinds].to_numpy().sum())
    if shown + feedback == 0:
        st.info(
            "No traffic yet in this window. Recommendations and feedback appear here as "
            "soon as clients (or the demo simulator started by `make run`) call the API."
        )
    st.subheader("Impressions and CTR")
    if shown:
        st.altair_chart(charts.engagement(series, changes), width="stretch")
    else:
        st.caption("No impressions in this window: nothing to chart.")
    st.subheader("Feedback")
    if feedback:
        st.altair_chart(charts.events(series, changes, kinds), width="stretch")
    else:
        st.caption("No feedback in this window: nothing to chart.")
    if len(changes):
        st.caption(
            f"Dashed lines: {len(changes)} parameter change(s) in this window (hover for who "
            "and why)."
        )
    upto = "no refresh yet" if fresh is None else f"{fresh:%Y-%m-%d %H:%M:%S %Z}"
    st.caption(f"Figures up to {upto}; this part refreshes every {REFRESH_S} s.")


st.title("Overview")
label = st.radio("Window", list(engagement.WINDOWS), horizontal=True, index=1, key="window")
live(engagement.WINDOWS[label or "Last hour"])
