from __future__ import annotations

import logging

import pytest

from serving.app.throttled_log import ThrottledWarning


def test_one_warning_per_period_counts_the_suppressed(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    now = [100.0]
    monkeypatch.setattr("serving.app.throttled_log.time.monotonic", lambda: now[0])
    warning = ThrottledWarning(logging.getLogger("t"), every_s=10)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            warning.warn("down: %s", "x")
        now[0] += 10
        warning.warn("down: %s", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "down: x",
        "down: y (4 more since the last warning)",
    ]
