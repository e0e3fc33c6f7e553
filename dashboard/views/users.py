"""Users: one user's recent events, their current recommendations with explanations (the
real Recommend RPC), and "forget this user" (the ForgetUser RPC) after confirmation."""

from __future__ import annotations

import grpc
import pandas as pd
import psycopg
import streamlit as st

from dashboard import resources
from dashboard.queries import catalogue
from dashboard.queries import users as queries
from serving.core.domain import Recommendation

K = 10


def _recommendations_table(rec: Recommendation, titles: dict[str, str]) -> pd.DataFrame:
    rows = []
    for rank, item in enumerate(rec.items, start=1):
        because = ", ".join(titles.get(i, i) for i in item.because_item_ids) or "-"
        components = ", ".join(f"{k} {v:+.3f}" for k, v in item.components.items() if v)
        rows.append(
            {
                "rank": rank,
                "item_id": item.item_id,
                "title": titles.get(item.item_id, ""),
                "score": round(item.score, 4),
                "because you engaged with": because,
                "score components": components,
            }
        )
    return pd.DataFrame(rows)


def _show(user_id: str) -> None:
    conn = resources.connection()
    state = queries.state(conn, user_id)
    events = queries.recent_events(conn, user_id)
    columns = st.columns(3)
    columns[0].metric("Events (latest shown)", f"{len(events):,}")
    columns[1].metric("History length", f"{state['history']:,}" if state else "0")
    columns[2].metric("Disliked items", f"{state['disliked']:,}" if state else "0")
    st.subheader("Recent events")
    if events.empty:
        st.info("No events for this user.")
    else:
        st.dataframe(events, hide_index=True)

    st.subheader("Current recommendations")
    st.caption("Asked live from the Recommend RPC (the answer is logged like any other).")
    try:
        rec = resources.client().recommend(user_id, k=K)
    except grpc.RpcError as error:
        st.error(f"Recommend failed: {error.details()}")
    else:
        ids = [i.item_id for i in rec.items] + [b for i in rec.items for b in i.because_item_ids]
        titles = catalogue.titles(conn, ids)
        st.markdown(
            f"variant **{rec.variant or '-'}** · parameters v{rec.parameter_version} · "
            f"model v{rec.model_version or '-'}"
            + (" · **degraded (fallback)**" if rec.degraded else "")
        )
        st.dataframe(_recommendations_table(rec, titles), hide_index=True)

    st.subheader("Forget this user")
    st.caption("Deletes the user's events, state and recommendations. This cannot be undone.")
    confirmed = st.checkbox(f"Yes, forget {user_id!r}", key="forget_confirm")
    if st.button("Forget this user", disabled=not confirmed, type="primary", key="forget"):
        try:
            deleted = resources.client().forget_user(user_id)
        except grpc.RpcError as error:
            st.error(f"ForgetUser failed: {error.details()}")
        else:
            st.success(f"Forgot {user_id!r}: {deleted:,} events deleted.")


st.title("Users")
resources.operator()
user_id = st.text_input("User id", key="user_id").strip()
if user_id:
    try:
        _show(user_id)
    except psycopg.Error as error:
        resources.database_lost(error)
