"""Operator login: names and passwords from the ``dashboard_users`` setting. Every page is
behind it (nothing is readable or writable anonymously); the name becomes ``changed_by``.

Failed logins are throttled per operator name and per client address
(:mod:`dashboard.login_throttle`) and logged (logger ``dashboard.auth``: name, address,
failures in a row; never the password)."""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Mapping

import streamlit as st

from dashboard.login_throttle import LoginThrottle

OPERATOR = "operator"
LOGGED_NAME_CHARS = 64  # names are whatever a guesser types: bounded in the log

log = logging.getLogger("dashboard.auth")


def verify(logins: Mapping[str, str], name: str, password: str) -> bool:
    """Whether ``password`` is ``name``'s, compared in constant time (an unknown name costs
    the same comparison, so timing does not tell which names exist)."""
    expected = logins.get(name, "\0" + password)
    return hmac.compare_digest(expected.encode(), password.encode()) and name in logins


@st.cache_resource(show_spinner=False)
def throttle() -> LoginThrottle:
    """The process's one throttle, shared by every browser session."""
    _log_to_stderr()
    return LoginThrottle()


def _log_to_stderr() -> None:
    # Streamlit configures only its own loggers; without a handler these warnings would
    # reach stderr through logging.lastResort, without a time stamp.
    logger = logging.getLogger("dashboard")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def client_address() -> str | None:
    """The browser's address as Streamlit's server saw it (None on localhost). Behind a
    reverse proxy or ingress this is the proxy's, unless uvicorn is told to trust its
    X-Forwarded-For (``FORWARDED_ALLOW_IPS``, see deploy/README.md); a header is never
    read here, so a client cannot choose its own address."""
    try:
        return st.context.ip_address
    except Exception:  # no browser connection (bare script run)
        return None


def _sign_in(logins: Mapping[str, str], name: str, password: str) -> str | None:
    """The error to show, or None once ``name`` is signed in."""
    address = client_address()
    gate = throttle()
    verdict = gate.attempt(name, address)
    shown_name = name[:LOGGED_NAME_CHARS]
    if not verdict.allowed:
        log.warning(
            "login refused for %r from %s: %s locked for %.0fs more",
            shown_name,
            address or "localhost",
            verdict.locked,
            verdict.retry_after_s,
        )
        return (
            "Too many failed logins for this operator or from this address: try again in "
            f"{math.ceil(verdict.retry_after_s)} s."
        )
    if verify(logins, name, password):
        gate.succeeded(name, address)
        log.info("login of %r from %s", shown_name, address or "localhost")
        st.session_state[OPERATOR] = name
        return None
    by_name, by_address = gate.failures(name, address)
    log.warning(
        "failed login for %r from %s (%d in a row for this name, %d from this address)",
        shown_name,
        address or "localhost",
        by_name,
        by_address,
    )
    return "Unknown operator or wrong password."


def require_login(logins: Mapping[str, str]) -> str | None:
    """The signed-in operator, or None after showing the login form."""
    name = st.session_state.get(OPERATOR)
    if name:
        return str(name)
    st.title("Recsys operations")
    with st.form("login"):
        entered = st.text_input("Operator", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        error = _sign_in(logins, entered.strip(), password)
        if error is None:
            st.rerun()
        st.error(error)
    st.caption("Operators are configured with RECSYS_DASHBOARD_USERS (name:password,...).")
    return None


def logout() -> None:
    """Forget the signed-in operator of this browser session."""
    st.session_state.pop(OPERATOR, None)
