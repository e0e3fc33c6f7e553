"""The Users page against the real platform (embedded PostgreSQL, tritonserver, the gRPC
server): an operator picks a recently active user from the list instead of knowing an id,
and sees that user's events and live recommendations."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from serving.client import Event, RecsysClient
from tests.integration.platform import Running

pytestmark = pytest.mark.integration

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def test_an_operator_picks_a_recent_user(
    platform: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"pick-{uuid.uuid4().hex[:8]}-{n}" for n in range(2)]
    clicked = {}
    with RecsysClient(platform.target) as client:
        for name in names:  # the second is the more recent
            rec = client.recommend(name, k=10)
            clicked[name] = rec.items[0].item_id
            client.log_feedback(
                [
                    Event(
                        clicked[name],
                        "click",
                        user_id=name,
                        recommendation_id=rec.recommendation_id,
                    )
                ]
            )
    for variable in [k for k in os.environ if k.startswith("RECSYS_")]:
        monkeypatch.delenv(variable)
    for variable, value in platform.settings.to_env().items():
        monkeypatch.setenv(variable, value)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["operator"] = "tester"
    at.switch_page("views/users.py").run()
    assert not at.exception, at.exception

    picker = at.selectbox(key="recent_user")
    labels = [label for label in picker.options if label.startswith("pick-")]
    assert [label.split(" · ")[0] for label in labels[:2]] == names[::-1]  # newest first
    assert " · 1 event · " in labels[0]
    assert list(at.dataframe[0].value["user_id"][:2]) == names[::-1]  # the landing list

    picker.set_value(names[0]).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.text_input(key="user_id").value == names[0]  # the pick fills the id box
    events, recommendations = at.dataframe[0].value, at.dataframe[1].value
    assert list(events["item_id"]) == [clicked[names[0]]]
    assert list(events["type"]) == ["click"]
    assert len(recommendations) == 10

    # A confirmation to forget one user does not carry over to the next one picked.
    at.checkbox(key="forget_confirm").check().run()
    at.selectbox(key="recent_user").set_value(names[1]).run()
    assert at.text_input(key="user_id").value == names[1]
    assert not at.checkbox(key="forget_confirm").value
    assert list(at.dataframe[0].value["item_id"]) == [clicked[names[1]]]

    # Trying a query on the page asks Recommend with it: the query shows in the scores
    # and explains the items it brought.
    at.text_input(key="user_query").input("a documentary about the night sky").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    steered = at.dataframe[1].value
    assert len(steered) == 10
    assert all("query" in components for components in steered["score components"])
    assert "the query" in set(steered["because you engaged with"])
