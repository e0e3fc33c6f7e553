"""Experiments: per-variant CTR and conversion with 95% Wilson intervals and a two-proportion
z-test against the first variant; create, re-allocate and stop through the Admin API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
import pandas as pd
import psycopg
import streamlit as st

from dashboard import charts, resources, stats
from dashboard.queries import experiments as queries
from serving.core.experiments import Variant

SIGNIFICANCE = 0.05


def compare(traffic: pd.DataFrame) -> pd.DataFrame:
    """Rates with intervals per variant, and each variant's difference from the first one
    (z and p of the two-proportion test) for CTR and conversion."""
    rows = []
    base = traffic.iloc[0] if len(traffic) else None
    for _, row in traffic.iterrows():
        record: dict[str, Any] = {"variant": row["variant"], "impressions": row["impressions"]}
        for rate, count in (("ctr", "clicks"), ("conversion", "purchases")):
            shown, hits = int(row["impressions"]), int(row[count])
            record[count] = hits
            record[rate] = hits / shown if shown else 0.0
            record[f"{rate}_low"], record[f"{rate}_high"] = stats.wilson(hits, shown)
            assert base is not None
            z, p = stats.two_proportion_test(
                int(base[count]), int(base["impressions"]), hits, shown
            )
            record[f"{rate}_z"], record[f"{rate}_p"] = z, p
        rows.append(record)
    return pd.DataFrame(rows)


def _verdict(p: float, same: bool) -> str:
    if same:
        return "baseline"
    return "significant" if p < SIGNIFICANCE else "not significant"


def _show_results(experiment: dict[str, Any]) -> None:
    names = [v["name"] for v in experiment["variants"]]
    traffic = queries.variant_traffic(
        resources.connection(), names, experiment["created_at"], experiment["stopped_at"]
    )
    results = compare(traffic)
    if not results["impressions"].sum():
        st.caption(
            "No impressions in this experiment yet: its variants' rates and intervals fill "
            "in as they serve."
        )
    left, right = st.columns(2)
    left.altair_chart(charts.rate_with_interval(results, "ctr", "CTR"), width="stretch")
    right.altair_chart(
        charts.rate_with_interval(results, "conversion", "conversion"), width="stretch"
    )
    table = pd.DataFrame(
        {
            "variant": results["variant"],
            "impressions": results["impressions"],
            "CTR": [f"{r:.3%}" for r in results["ctr"]],
            "CTR 95% CI": [
                f"{lo:.3%} to {hi:.3%}"
                for lo, hi in zip(results["ctr_low"], results["ctr_high"], strict=True)
            ],
            "CTR vs first (p)": [
                f"{p:.4f} ({_verdict(p, i == 0)})" for i, p in enumerate(results["ctr_p"])
            ],
            "conversion": [f"{r:.3%}" for r in results["conversion"]],
            "conversion 95% CI": [
                f"{lo:.3%} to {hi:.3%}"
                for lo, hi in zip(
                    results["conversion_low"], results["conversion_high"], strict=True
                )
            ],
            "conversion vs first (p)": [
                f"{p:.4f} ({_verdict(p, i == 0)})" for i, p in enumerate(results["conversion_p"])
            ],
        }
    )
    st.dataframe(table, hide_index=True)
    st.caption(
        "95% Wilson intervals; p: two-sided two-proportion z-test against the first variant "
        f"(significant below {SIGNIFICANCE}). Impressions within one list are not independent, "
        "so treat borderline results with care."
    )


def _submit(action: str, reason: str, call: Callable[[str], object]) -> None:
    """Make an Admin call with the (required) reason; show how it went."""
    if not reason.strip():
        st.error("A reason is required.")
        return
    try:
        call(reason.strip())
    except grpc.RpcError as error:
        st.error(f"{action} failed: {error.details()}")
        return
    st.success(f"{action}: done.")


def _manage(experiment: dict[str, Any], operator: str) -> None:
    name = experiment["name"]
    with st.form(f"allocate_{name}"):
        st.markdown("**Re-allocate traffic** (shares must add up to 1)")
        shares = {
            v["name"]: st.number_input(
                v["name"], 0.0, 1.0, float(v["share"]), 0.05, key=f"share_{name}_{v['name']}"
            )
            for v in experiment["variants"]
        }
        reason = st.text_input("Reason", key=f"allocate_reason_{name}")
        if st.form_submit_button("Re-allocate"):
            _submit(
                "Re-allocation",
                reason,
                lambda why: resources.client().allocate_experiment(
                    name, shares, changed_by=operator, reason=why
                ),
            )
    with st.form(f"stop_{name}"):
        st.markdown("**Stop the experiment** (everyone gets the current parameters again)")
        reason = st.text_input("Reason", key=f"stop_reason_{name}")
        if st.form_submit_button("Stop experiment"):
            _submit(
                "Stop",
                reason,
                lambda why: resources.client().stop_experiment(
                    name, changed_by=operator, reason=why
                ),
            )


def parse_variants(table: pd.DataFrame) -> list[Variant]:
    """Variants from the editor's rows (name, share, overrides as a JSON object)."""
    variants = []
    for index, row in table.iterrows():
        if not str(row.get("name") or "").strip():
            continue
        text = str(row.get("overrides") or "").strip() or "{}"
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"row {index}: overrides are not JSON ({error.msg})") from None
        if not isinstance(overrides, dict):
            raise ValueError(f"row {index}: overrides must be a JSON object")
        variants.append(Variant(str(row["name"]).strip(), float(row["share"] or 0), overrides))
    return variants


def _create(operator: str) -> None:
    with st.form("create_experiment"):
        st.markdown("**New experiment** (one runs at a time)")
        name = st.text_input("Name", key="experiment_name")
        rows = st.data_editor(
            pd.DataFrame(
                {
                    "name": ["control", "treatment"],
                    "share": [0.5, 0.5],
                    "overrides": ["{}", '{"popularity_weight": 0.3}'],
                }
            ),
            num_rows="dynamic",
            key="experiment_variants",
        )
        reason = st.text_input("Reason", key="experiment_reason")
        if st.form_submit_button("Create experiment"):
            try:
                variants = parse_variants(rows)
            except ValueError as error:
                st.error(str(error))
                return
            if not name.strip():
                st.error("A name is required.")
                return
            _submit(
                f"Experiment {name.strip()!r}",
                reason,
                lambda why: resources.client().create_experiment(
                    name.strip(), variants, changed_by=operator, reason=why
                ),
            )


st.title("Experiments")
operator = resources.operator()
try:
    found = queries.experiments(resources.connection())
except psycopg.Error as error:
    resources.database_lost(error)
    st.stop()
if not found:
    st.info("No experiment yet.")
else:
    labels = [f"{e['name']} ({e['status']})" for e in found]
    chosen = found[labels.index(st.selectbox("Experiment", labels, key="experiment") or labels[0])]
    st.caption(
        f"Started {chosen['created_at']:%Y-%m-%d %H:%M} UTC by {chosen['changed_by']}: "
        f"{chosen['reason']}"
        + (f"; stopped {chosen['stopped_at']:%Y-%m-%d %H:%M} UTC" if chosen["stopped_at"] else "")
    )
    st.dataframe(
        pd.DataFrame(
            [
                {"variant": v["name"], "share": v["share"], "overrides": json.dumps(v["overrides"])}
                for v in chosen["variants"]
            ]
        ),
        hide_index=True,
    )
    try:
        _show_results(chosen)
    except psycopg.Error as error:
        resources.database_lost(error)
    if chosen["status"] == "running":
        _manage(chosen, operator)
if not any(e["status"] == "running" for e in found):
    _create(operator)
