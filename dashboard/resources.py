"""What every page shares: the settings, one database connection and one gRPC client per
dashboard process, and the signed-in operator."""

from __future__ import annotations

from typing import Any

import psycopg
import streamlit as st

from serving.client import RecsysClient
from serving.config import Settings, load_settings

CLIENT_TIMEOUT_S = 15.0  # a preview replays hundreds of logged lists


def settings() -> Settings | None:
    """The RECSYS_* settings, or None after showing what is wrong with them."""
    try:
        loaded = load_settings()
    except ValueError as error:
        st.error(f"The RECSYS_* settings are invalid: {error}")
        return None
    if loaded.database_url is None:
        st.error(
            "No database configured: set RECSYS_DATABASE_URL to the platform's PostgreSQL URL "
            "(e.g. `postgresql://user:password@host:5432/recsys`), or start the whole "
            "platform with `make run`, which sets it for the dashboard."
        )
        return None
    return loaded


def current() -> Settings:
    """The settings of a page run (app.py has checked them before any page runs)."""
    loaded = settings()
    if loaded is None:
        st.stop()
    assert loaded is not None
    return loaded


@st.cache_resource(show_spinner=False)
def _connect(url: str) -> psycopg.Connection[Any]:
    # One connection shared by every browser session (psycopg serialises its use);
    # autocommit so that no read ever leaves a transaction open between refreshes.
    return psycopg.connect(url, autocommit=True, connect_timeout=5, application_name="dashboard")


def connection() -> psycopg.Connection[Any]:
    """The shared connection, reopened when the database has restarted."""
    database_url = current().database_url
    assert database_url is not None
    url = database_url.get_secret_value()
    conn = _connect(url)
    if conn.closed or conn.broken:
        _connect.clear()
        conn = _connect(url)
    return conn


def database_lost(error: psycopg.Error) -> None:
    """Keep the page up through a database restart; the next run reconnects."""
    _connect.clear()
    st.warning(f"Cannot read the database right now ({type(error).__name__}); retrying.")


@st.cache_resource(show_spinner=False)
def _client(target: str, token: str, root_cert: bytes | None) -> RecsysClient:
    return RecsysClient(
        target, token=token, timeout_s=CLIENT_TIMEOUT_S, retries=1, tls_root_cert=root_cert
    )


def client() -> RecsysClient:
    """The gRPC SDK client with the admin token: every change goes through the Admin API.
    When the API speaks TLS (``tls_cert_file``), its own certificate chain is trusted."""
    loaded = current()
    root_cert = loaded.tls_cert_file.read_bytes() if loaded.tls_cert_file else None
    return _client(loaded.grpc_target, loaded.admin_token.get_secret_value(), root_cert)


def operator() -> str:
    """The signed-in operator's name (recorded as changed_by)."""
    name = st.session_state.get("operator")
    if not name:
        st.stop()
    return str(name)
