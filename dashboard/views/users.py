"""Users: pick one of the recently active users (or enter a known id) to see their recent
events, their current recommendations with explanations (the real Recommend RPC), and
"forget this user" (the ForgetUser RPC) after confirmation."""

from __future__ import annotations

from typing import Any

import grpc
import pandas as pd
import psycopg
import streamlit as st

from dashboard import labels, resources
from dashboard.queries import catalogue
from dashboard.queries import users as queries
from serving.core.domain import Recommendation

K = 10
RECENT = 20
LAST_ITEMS = 3
TITLE_CHARS = 32


def _recommendations_table(rec: Recommendation, titles: dict[str, str]) -> pd.DataFrame:
    rows = []
    for rank, item in enumerate(rec.items, start=1):
        because = ", ".join(titles.get(i, i) for i in item.because_item_ids)
        because = because or ("the query" if item.because_query else "-")
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


def _recommend(user_id: str, query: str) -> Recommendation:
    """The user's live recommendations, steered by ``query`` (the user's own words) when
    the operator tries one."""
    return resources.client().recommend(user_id, k=K, query=query or None)


def _recent(conn: psycopg.Connection[Any]) -> pd.DataFrame:
    """The recently active users with a few facts each, titles instead of item ids."""
    recent = queries.recent_users(conn, RECENT, LAST_ITEMS)
    titles = catalogue.titles(conn, [i for items in recent["last_items"] for i in items])
    recent["last seen"] = [labels.ago(s) for s in recent["seconds_ago"]]
    recent["last items"] = [
        ", ".join(
            f"{titles.get(item, item)[:TITLE_CHARS]} ({kind})"
            for item, kind in zip(items, kinds, strict=True)
        )
        or "-"
        for items, kinds in zip(recent["last_items"], recent["last_types"], strict=True)
    ]
    return recent


def _picked() -> None:
    # Picking a recent user fills the id box: the box is the one source of the chosen user.
    picked = st.session_state.get("recent_user")
    if picked:
        st.session_state["user_id"] = picked
    _changed_user()


def _changed_user() -> None:
    # A confirmation given for one user never carries over to the next.
    st.session_state["forget_confirm"] = False


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
    query = st.text_input(
        "Try a query, in the user's own words",
        key="user_query",
        placeholder="e.g. something light and funny",
        help="Blended with the user's history by the query_weight parameter.",
    ).strip()
    try:
        rec = _recommend(user_id, query)
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
try:
    recent = _recent(resources.connection())
    facts = {
        user: f"{user} · seen {seen} · {labels.count(int(events), 'event')} · {items}"
        for user, seen, events, items in zip(
            recent["user_id"],
            recent["last seen"],
            recent["events"],
            recent["last items"],
            strict=True,
        )
    }
    st.selectbox(
        "Recently active users",
        list(facts),
        index=None,
        # (.get: a pick that has since left the list, e.g. a forgotten user, keeps its id)
        format_func=lambda user: facts.get(user, user),
        placeholder="Pick a user…" if facts else "No user has sent feedback yet",
        key="recent_user",
        on_change=_picked,
    )
    user_id = st.text_input(
        "…or a user id you know", key="user_id", on_change=_changed_user
    ).strip()
    if user_id:
        _show(user_id)
    elif recent.empty:
        st.info(
            "No user has sent feedback yet. Users appear here as soon as clients (or the "
            "demo simulator started by `make run`) log events; a user id you know can be "
            "entered above meanwhile."
        )
    else:
        st.caption(f"The {len(recent)} users seen most recently (by their feedback).")
        st.dataframe(
            recent[["user_id", "last seen", "events", "last items"]],
            hide_index=True,
            column_config={"last items": st.column_config.TextColumn(width="large")},
        )
except psycopg.Error as error:
    resources.database_lost(error)
