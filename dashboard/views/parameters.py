"""Parameters: edit every ranking parameter (validated, with a required reason), preview
the change (top-10 before and after for sample users, off-policy CTR estimate), save it
through the Admin API; the full history with diffs and one-click rollback."""

from __future__ import annotations

from typing import Any

import grpc
import pandas as pd
import psycopg
import streamlit as st

from dashboard import parameter_form, resources, stats
from dashboard.queries import catalogue
from dashboard.queries import parameters as queries
from serving.core.errors import InvalidArgument
from serving.core.parameters import parse_parameters

PREVIEW_HOURS = 24.0
PREVIEW_SAMPLE = 500
FLASH = "parameters_saved"  # what the last save or rollback did, shown after the rerun


def _saved(message: str) -> None:
    """Rerun the page so that it shows the new current version, with ``message``."""
    st.session_state[FLASH] = message
    st.rerun()


def _validate(current: dict[str, Any], changed: dict[str, Any]) -> str | None:
    """The model's own message for an invalid combination, None when valid."""
    try:
        parse_parameters({k: parameter_form.normalise(v) for k, v in (current | changed).items()})
    except InvalidArgument as error:
        return str(error)
    return None


def _for_api(changed: dict[str, Any]) -> dict[str, Any]:
    """Values as the SDK's protobuf messages take them (lists for repeated fields)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in changed.items()}


def _preview(changed: dict[str, Any]) -> None:
    try:
        result = resources.client().preview_parameters(
            _for_api(changed), hours=PREVIEW_HOURS, sample=PREVIEW_SAMPLE
        )
    except grpc.RpcError as error:
        st.error(f"Preview failed: {error.details()}")
        return
    st.markdown(
        f"**Off-policy estimate** over {result.recommendations:,} logged lists "
        f"({result.impressions:,} impressions, last {PREVIEW_HOURS:g} h)"
    )
    columns = st.columns(4)
    columns[0].metric("Logged CTR", f"{result.logged_ctr:.2%}")
    columns[1].metric(
        "Estimated CTR (SNIPS)",
        f"{result.snips_ctr:.2%}",
        delta=f"{(result.snips_ctr - result.logged_ctr) * 100:+.2f} pp",
        help="self-normalised inverse propensity scoring",
    )
    columns[2].metric(
        "Estimated CTR (IPS)",
        f"{result.ips_ctr:.2%}",
        help=f"± {stats.Z95 * result.ips_standard_error:.2%} (95%, from the IPS standard error)",
    )
    columns[3].metric(
        "Effective sample size",
        f"{result.effective_sample_size:,.0f}",
        help="small values mean the new policy is far from what was logged: trust it less",
    )
    if not result.users:
        return
    ids = {i for user in result.users for i in (*user.before, *user.after)}
    titles = catalogue.titles(resources.connection(), sorted(ids))
    for user in result.users:
        st.markdown(f"Top-10 for `{user.user_id}`")
        rows = max(len(user.before), len(user.after))
        st.dataframe(
            pd.DataFrame(
                {
                    "rank": range(1, rows + 1),
                    "before": [_title(user.before, i, titles) for i in range(rows)],
                    "after": [_title(user.after, i, titles) for i in range(rows)],
                }
            ),
            hide_index=True,
        )


def _title(items: tuple[str, ...], index: int, titles: dict[str, str]) -> str:
    if index >= len(items):
        return ""
    return f"{items[index]} · {titles.get(items[index], '')}"


def _edit(current: dict[str, Any], operator: str) -> None:
    st.subheader(f"Edit (current: version {current['version']})")
    with st.form("parameters"):
        entered = parameter_form.inputs(current["parameters"])
        reason = st.text_input("Reason (required)", key="param_reason")
        left, right = st.columns(2)
        preview = left.form_submit_button("Preview")
        save = right.form_submit_button("Save", type="primary")
    if not (preview or save):
        return
    changed = parameter_form.changes(current["parameters"], entered)
    if not changed:
        st.info("Nothing changed.")
        return
    problem = _validate(current["parameters"], changed)
    if problem is not None:
        st.error(problem)
        return
    st.markdown("Changes: " + ", ".join(f"`{k}` → `{v}`" for k, v in changed.items()))
    if preview:
        _preview(changed)
        return
    if not reason.strip():
        st.error("A reason is required to save a change.")
        return
    try:
        saved = resources.client().update_parameters(
            _for_api(changed),
            changed_by=operator,
            reason=reason.strip(),
        )
    except grpc.RpcError as error:
        st.error(f"Saving failed: {error.details()}")
        return
    _saved(f"Saved: version {saved['version']} (in force on every server within a second).")


def _history(operator: str) -> None:
    st.subheader("History")
    history = queries.history(resources.connection())
    if history.empty:
        st.info("No parameter version yet: the orchestrator writes version 1 when it starts.")
        return
    st.dataframe(history, hide_index=True)
    versions = list(history["version"][1:])
    if not versions:
        return
    with st.form("rollback"):
        version = st.selectbox("Roll back to version", versions, key="rollback_version")
        reason = st.text_input("Reason", key="rollback_reason")
        if st.form_submit_button("Roll back"):
            text = reason.strip() or f"rollback to version {version}"
            try:
                saved = resources.client().rollback_parameters(
                    int(version), changed_by=operator, reason=text
                )
            except grpc.RpcError as error:
                st.error(f"Rollback failed: {error.details()}")
            else:
                _saved(f"Rolled back: version {saved['version']} has version {version}'s values.")


st.title("Ranking parameters")
operator = resources.operator()
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))
try:
    current_version = resources.client().get_parameters()
except grpc.RpcError as error:
    st.error(f"Cannot reach the Admin API at {resources.current().grpc_target}: {error.details()}")
else:
    _edit(current_version, operator)
try:
    _history(operator)
except psycopg.Error as error:
    resources.database_lost(error)
