"""Operator login: names and passwords from the ``dashboard_users`` setting. Every page is
behind it (nothing is readable or writable anonymously); the name becomes ``changed_by``."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

import streamlit as st

OPERATOR = "operator"


def verify(logins: Mapping[str, str], name: str, password: str) -> bool:
    """Whether ``password`` is ``name``'s, compared in constant time (an unknown name costs
    the same comparison, so timing does not tell which names exist)."""
    expected = logins.get(name, "\0" + password)
    return hmac.compare_digest(expected.encode(), password.encode()) and name in logins


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
        if verify(logins, entered.strip(), password):
            st.session_state[OPERATOR] = entered.strip()
            st.rerun()
        st.error("Unknown operator or wrong password.")
    st.caption("Operators are configured with RECSYS_DASHBOARD_USERS (name:password,...).")
    return None


def logout() -> None:
    """Forget the signed-in operator of this browser session."""
    st.session_state.pop(OPERATOR, None)
