"""System: Triton's models, versions and readiness; request latency percentiles and error
rates; feedback ingestion; the database's size."""

from __future__ import annotations

import psycopg
import streamlit as st

from dashboard import charts, monitoring, resources
from dashboard.queries import system
from dashboard.queries.engagement import WINDOWS


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _triton(url: str) -> None:
    st.subheader("Triton")
    try:
        ready, models = monitoring.triton_models(url)
    except Exception as error:  # any transport failure: the page stays up
        st.warning(f"Triton at {url} is unreachable ({type(error).__name__}).")
        return
    st.markdown(f"Server at `{url}`: **{'ready' if ready else 'NOT ready'}**")
    st.dataframe(models, hide_index=True)


def _grpc(metrics_url: str) -> None:
    st.subheader("gRPC server (since it started)")
    try:
        methods = monitoring.grpc_methods(metrics_url)
    except OSError as error:
        st.warning(f"Cannot read {metrics_url} ({type(error).__name__}).")
        return
    st.dataframe(methods, hide_index=True)


def _database(window_s: int) -> None:
    conn = resources.connection()
    latency = system.latency(conn, window_s)
    st.subheader("Recommend latency (all replicas, from the rollups)")
    columns = st.columns(5)
    columns[0].metric("Recommendations", f"{int(latency['recommendations'] or 0):,}")
    columns[1].metric("p50", _ms(latency["p50_ms"]))
    columns[2].metric("p95", _ms(latency["p95_ms"]))
    columns[3].metric("p99", _ms(latency["p99_ms"]))
    columns[4].metric(
        "Degraded",
        f"{latency['degraded_share'] or 0.0:.1%}",
        help="answered from the popularity/freshness fallback (Triton unreachable or late)",
    )
    st.subheader("Feedback ingestion")
    ingestion = system.ingestion(conn, window_s)
    minutes = max(1.0, window_s / 60)
    st.metric("Events per minute (window average)", f"{ingestion['events'].sum() / minutes:,.1f}")
    if ingestion["events"].sum():
        st.altair_chart(
            charts.line(ingestion, "minute", "events", "events per minute"), width="stretch"
        )
    else:
        st.caption("No feedback received in this window: nothing to chart.")
    st.subheader("Database")
    total, tables = system.database_size(conn)
    st.metric("Database size", f"{total / 2**20:,.1f} MiB")
    tables["MiB"] = (tables["bytes"] / 2**20).round(1)
    st.altair_chart(
        charts.bars(tables[["table", "MiB"]], "table", "MiB", "MiB", charts.DECIMAL),
        width="stretch",
    )


st.title("System")
resources.operator()
settings = resources.current()
label = st.radio("Window", list(WINDOWS), horizontal=True, index=1, key="system_window")
_triton(settings.triton_grpc_url)
if settings.metrics_port:
    host = settings.grpc_target.rsplit(":", 1)[0]
    _grpc(f"http://{host}:{settings.metrics_port}/metrics")
try:
    _database(WINDOWS[label or "Last hour"])
except psycopg.Error as error:
    resources.database_lost(error)
