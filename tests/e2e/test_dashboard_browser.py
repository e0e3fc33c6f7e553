"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright) loads the dashboard that `recsys up`'s Stack runs, logs in, changes a ranking
parameter on the Parameters page, and the change is then in force through the gRPC API;
on the Users page an operator picks a recently active user and sees their events and
live recommendations. Streamlit's developer toolbar ("Deploy") is never shown.

Screenshots of every step are kept in ``$TEST_ARTIFACTS_DIR/dashboard-browser`` (default
``test-artifacts/`` in the repository, git-ignored); the test prints where.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.adapters.postgres.db import PROJECT_ROOT
from serving.client import Event, RecsysClient
from serving.config import Settings
from serving.stack import Stack
from tests.conftest import require_tool
from tests.integration import platform
from tests.integration.platform import ADMIN_TOKEN, wait_for_version

pytestmark = [pytest.mark.e2e]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags that work on these machines (no sandbox in containers, no GPU, nothing phoning home).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OPERATOR, PASSWORD = "e2e-operator", "browser-secret"
DEMO_ITEMS = 60
TIMEOUT_MS = 60_000  # the first render imports pandas, altair and the SDK on a busy machine


@pytest.fixture(autouse=True, scope="module")
def _chromium_present() -> None:
    """Before the stack starts: without a browser there is nothing to drive."""
    require_tool(Path(CHROMIUM).exists(), "chromium is not installed (make test installs it)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The platform with its dashboard, as `recsys up` starts it (no simulator)."""
    state = tmp_path_factory.mktemp("dashboard-browser")
    running = Stack(
        # A small catalogue: this test is about the browser, and the start costs less.
        # (Module access: a test_* name imported here would be collected as a test.)
        platform.test_settings(
            state, dashboard_users=f"{OPERATOR}:{PASSWORD}", demo_items=DEMO_ITEMS
        ),
        simulate=False,
        dashboard=True,
    )
    try:
        running.start()
        yield running.settings
    finally:
        running.stop()


@pytest.fixture
def screenshots() -> Path:
    root = Path(os.environ.get("TEST_ARTIFACTS_DIR", PROJECT_ROOT / "test-artifacts"))
    folder = root / "dashboard-browser"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


def _url(settings: Settings) -> str:
    return f"http://{settings.grpc_target.rsplit(':', 1)[0]}:{settings.dashboard_port}/"


@contextlib.contextmanager
def _page(profile: Path, screenshots: Path) -> Iterator[Any]:
    """A page of a fresh headless Chromium; its last state is kept as ``last.png``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page
        finally:
            page.screenshot(path=screenshots / "last.png", full_page=True)
            browser.close()


def _log_in(page: Any, url: str) -> None:
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_label("Operator", exact=True).fill(OPERATOR)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text("Figures up to")).to_be_visible()  # rendered


def test_an_operator_changes_a_parameter_in_the_browser(
    stack: Settings, screenshots: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with RecsysClient(stack.grpc_target, token=ADMIN_TOKEN) as client:
        before = client.get_parameters()
        target = round(before["parameters"]["popularity_weight"] + 0.25, 2)
        with _page(tmp_path / "chromium-profile", screenshots) as page:
            page.goto(_url(stack))
            page.get_by_label("Operator", exact=True).fill(OPERATOR)
            page.get_by_label("Password", exact=True).fill("wrong")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_text("Unknown operator or wrong password")).to_be_visible()
            page.screenshot(path=screenshots / "01-login-refused.png", full_page=True)

            _log_in(page, _url(stack))
            # An operator product: Streamlit's developer toolbar is hidden (config.toml).
            expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
            page.screenshot(path=screenshots / "02-overview.png", full_page=True)

            page.get_by_role("link", name="Parameters").click()
            expect(page.get_by_role("heading", name="Ranking parameters")).to_be_visible()
            weight = page.get_by_label("popularity_weight", exact=True)
            weight.fill(str(target))
            weight.press("Tab")
            page.get_by_label("Reason (required)").fill("browser e2e test")
            page.screenshot(path=screenshots / "03-parameters-edited.png", full_page=True)
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_text("Saved: version")).to_be_visible()
            page.screenshot(path=screenshots / "04-parameters-saved.png", full_page=True)

        current = client.get_parameters()
        assert current["version"] > before["version"]
        assert current["parameters"]["popularity_weight"] == pytest.approx(target)
        assert current["changed_by"] == OPERATOR and current["reason"] == "browser e2e test"
        wait_for_version(client, int(current["version"]))  # what Recommend ranks with now


def test_an_operator_picks_a_recent_user_in_the_browser(
    stack: Settings, screenshots: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    user = f"browser-{uuid.uuid4().hex[:8]}"
    with RecsysClient(stack.grpc_target) as client:
        rec = client.recommend(user, k=10)
        client.log_feedback(
            [
                Event(
                    rec.items[0].item_id,
                    "click",
                    user_id=user,
                    recommendation_id=rec.recommendation_id,
                )
            ]
        )
    with _page(tmp_path / "chromium-profile", screenshots) as page:
        _log_in(page, _url(stack))
        page.get_by_role("link", name="Users").click()
        expect(page.get_by_role("heading", name="Users")).to_be_visible()
        expect(page.get_by_text("seen most recently (by their feedback)")).to_be_visible()
        page.screenshot(path=screenshots / "05-users-recent.png", full_page=True)

        page.get_by_role("combobox", name="Recently active users").click()
        page.get_by_role("option", name=re.compile(rf"^{user} · seen .* · 1 event · ")).click()
        expect(page.get_by_label("…or a user id you know")).to_have_value(user)
        expect(page.get_by_role("heading", name="Recent events")).to_be_visible()
        events = page.get_by_test_id("stMetric").filter(has_text="Events (latest shown)")
        expect(events).to_contain_text("1")
        expect(page.get_by_role("heading", name="Current recommendations")).to_be_visible()
        # Rendered only once the live Recommend call has answered for this user.
        expect(page.get_by_text(re.compile(r"parameters v\d+"))).to_be_visible()
        page.screenshot(path=screenshots / "06-users-picked.png", full_page=True)
