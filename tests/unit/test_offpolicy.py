"""The off-policy estimators on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from serving.core.offpolicy import estimate


def test_ips_snips_and_effective_sample_size_by_hand():
    logged = np.array([0.5, 1.0, 1.0, 0.25])
    candidate = np.array([1.0, 0.0, 1.0, 0.5])
    clicked = np.array([True, True, False, True])
    # weights 2, 0, 1, 2; weighted clicks 2, 0, 0, 2
    result = estimate(logged, candidate, clicked, recommendations=2)
    assert (result.recommendations, result.impressions) == (2, 4)
    assert result.logged_ctr == pytest.approx(0.75)
    assert result.ips_ctr == pytest.approx(1.0)
    assert result.snips_ctr == pytest.approx(4 / 5)
    assert result.effective_sample_size == pytest.approx(25 / 9)
    assert result.ips_standard_error == pytest.approx(np.std([2, 0, 0, 2], ddof=1) / 2)


def test_the_logging_policy_itself_is_estimated_at_its_observed_ctr():
    rng = np.random.default_rng(0)
    logged = rng.uniform(0.05, 1.0, 500)
    clicked = rng.random(500) < 0.2
    result = estimate(logged, logged, clicked, recommendations=50)
    assert result.ips_ctr == pytest.approx(clicked.mean())
    assert result.snips_ctr == pytest.approx(clicked.mean())
    assert result.effective_sample_size == pytest.approx(500)


def test_a_policy_that_never_shows_the_clicked_items_gets_zero_and_no_logs_give_zeros():
    result = estimate(np.ones(3), np.array([0.0, 1.0, 1.0]), np.array([True, False, False]), 1)
    assert result.ips_ctr == 0.0 and result.snips_ctr == 0.0 and result.logged_ctr > 0
    empty = estimate(np.zeros(0), np.zeros(0), np.zeros(0, bool), 0)
    assert empty.impressions == 0 and empty.ips_ctr == 0.0
