"""Off-policy estimates of a candidate policy's click-through rate from logged impressions.

Item-level inverse propensity scoring for lists: every shown item is one trial, and its
click counts ``w = p_candidate(item shown) / p_logged(item shown)`` times. This is
unbiased when a click on an item does not depend on the other items in its list, and
when the logging policy could show everything the candidate shows (``p_logged > 0``
wherever ``p_candidate > 0``). Logging with exploration on is what provides that support:
with a deterministic logging policy, clicks on items it never showed are invisible, and a
candidate that shows other items looks worse than it is. The self-normalised estimate
(SNIPS) trades that bias for lower variance; the effective sample size says how many
impressions the estimate is worth.
"""

from __future__ import annotations

import math

import numpy as np

from serving.core.domain import OffPolicyEstimate


def estimate(
    logged: np.ndarray, candidate: np.ndarray, clicked: np.ndarray, recommendations: int
) -> OffPolicyEstimate:
    """Estimates from per-impression arrays: the logged propensity, the candidate's
    probability of showing the same item to the same user, and whether it was clicked."""
    n = len(logged)
    if n == 0:
        return OffPolicyEstimate(recommendations, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
    weights = candidate / np.maximum(logged, 1e-6)  # stored propensities are never 0
    rewards = clicked.astype(float)
    weighted = weights * rewards
    total = float(weights.sum())
    squares = float((weights**2).sum())
    return OffPolicyEstimate(
        recommendations=recommendations,
        impressions=n,
        logged_ctr=float(rewards.mean()),
        ips_ctr=float(weighted.mean()),
        snips_ctr=float(weighted.sum() / total) if total > 0 else 0.0,
        ips_standard_error=float(weighted.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
        effective_sample_size=total**2 / squares if squares > 0 else 0.0,
    )
