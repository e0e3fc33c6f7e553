"""Catalogue: top items, cold-item exposure, coverage, category mix, long tail; one item's
numbers and its nearest items by content."""

from __future__ import annotations

from typing import Any

import pandas as pd
import psycopg
import streamlit as st

from dashboard import charts, resources
from dashboard.queries import catalogue, embeddings
from serving.adapters.postgres.rollups import HEAD_SHARE

INDEX_TTL_S = 600
NEAREST = 10


@st.cache_resource(ttl=INDEX_TTL_S, show_spinner="Loading the content embeddings…")
def _content_index(url: str) -> embeddings.ContentIndex:
    # Shared by every session; new items show up within INDEX_TTL_S.
    del url  # the cache key: one index per database
    return embeddings.load(resources.connection())


def _overview(days: int) -> None:
    conn = resources.connection()
    summary = catalogue.summary(conn, days)
    top = catalogue.top_items(conn, days)
    mix = catalogue.category_mix(conn, days)
    columns = st.columns(4)
    columns[0].metric(
        "Coverage",
        f"{summary['coverage']:.1%}",
        help=f"{summary['items_shown']:,} of {summary['available_items']:,} available items shown",
    )
    columns[1].metric(
        "Long-tail share",
        f"{summary['long_tail_share']:.1%}",
        help=f"impressions on items outside the {HEAD_SHARE:.0%} most popular",
    )
    columns[2].metric(
        "Cold-item exposure",
        f"{summary['cold_share']:.1%}",
        help=f"impressions on items ingested in the last {catalogue.COLD_DAYS} days "
        f"({summary['cold_items_shown']:,} of {summary['cold_items']:,} such items shown)",
    )
    columns[3].metric("Impressions", f"{summary['impressions']:,}")
    if top.empty:
        st.info("Nothing shown in this window yet.")
        return
    left, right = st.columns(2)
    with left:
        st.subheader("Top items")
        labelled = top.assign(item=top["item_id"] + " · " + top["title"].str.slice(0, 40))
        st.altair_chart(
            charts.bars(
                labelled[["item", "impressions", "clicks"]], "item", "impressions", "impressions"
            ),
            width="stretch",
        )
    with right:
        st.subheader("Category mix")
        st.altair_chart(charts.bars(mix, "category", "impressions", "impressions"), width="stretch")
    st.dataframe(top, hide_index=True)


def _item(conn: psycopg.Connection[Any], url: str, item_id: str) -> None:
    found = catalogue.item(conn, item_id)
    if found is None:
        st.warning(f"No item {item_id!r}.")
        return
    st.markdown(f"### {found['title']}  \n`{found['item_id']}` · {', '.join(found['categories'])}")
    if found["description"]:
        st.caption(found["description"])
    columns = st.columns(5)
    for column, (label, key) in zip(
        columns,
        (
            ("Impressions", "impressions"),
            ("Clicks", "clicks"),
            ("Likes", "likes"),
            ("Add to cart", "add_to_carts"),
            ("Purchases", "purchases"),
        ),
        strict=True,
    ):
        column.metric(label, f"{int(found[key] or 0):,}", help="all time (item statistics)")
    days = catalogue.item_days(conn, item_id, max(catalogue.WINDOWS.values()))
    if days["impressions"].sum():
        st.altair_chart(
            charts.line(days, "day", "impressions", "impressions per day"), width="stretch"
        )
    else:
        st.caption(f"Not shown in the last {max(catalogue.WINDOWS.values())} days.")
    index = _content_index(url)
    nearest = index.nearest(item_id, NEAREST)
    st.markdown("**Nearest items by content** (cosine similarity of the MiniLM embeddings)")
    if not nearest:
        st.info("This item has no content embedding in the index yet.")
        return
    titles = catalogue.titles(conn, [other for other, _ in nearest])
    st.dataframe(
        pd.DataFrame(
            [
                {"item_id": other, "title": titles.get(other, ""), "similarity": round(score, 4)}
                for other, score in nearest
            ]
        ),
        hide_index=True,
    )


st.title("Catalogue")
label = st.radio(
    "Window", list(catalogue.WINDOWS), horizontal=True, index=1, key="catalogue_window"
)
settings = resources.current()
assert settings.database_url is not None
try:
    _overview(catalogue.WINDOWS[label or "Last 7 days"])
    st.subheader("Find an item")
    text = st.text_input("Item id or words of its title", key="item_search").strip()
    if text:
        conn = resources.connection()
        matches = catalogue.search(
            conn, _content_index(settings.database_url.get_secret_value()), text
        )
        if not matches:
            st.info(f"No item matches {text!r}.")
        else:
            options = [f"{item_id} · {title}" for item_id, title in matches]
            chosen = st.selectbox("Item", options, key="item_choice") or options[0]
            _item(conn, settings.database_url.get_secret_value(), chosen.split(" · ", 1)[0])
    computed = catalogue.computed_at(resources.connection())
    st.caption(
        "Window figures as of "
        + ("(not computed yet)" if computed is None else f"{computed:%Y-%m-%d %H:%M:%S %Z}")
        + ": recomputed from the daily rollup at every refresh on a small catalogue, at "
        "most a few minutes apart on a large one."
    )
except psycopg.Error as error:
    resources.database_lost(error)
