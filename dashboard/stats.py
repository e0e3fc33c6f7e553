"""Statistics for comparing variants: Wilson score intervals for a proportion and the
two-proportion z-test for the difference of two."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / trials`` ((0, 0) without trials). Unlike
    the normal approximation it stays inside [0, 1] and behaves at small counts."""
    if trials <= 0:
        return 0.0, 0.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> tuple[float, float]:
    """z and the two-sided p-value for H0: both proportions are equal (pooled standard
    error); (0, 1) when either side has no trials or nothing varies."""
    if trials_a <= 0 or trials_b <= 0:
        return 0.0, 1.0
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    error = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    if error == 0:
        return 0.0, 1.0
    z = (successes_b / trials_b - successes_a / trials_a) / error
    return z, math.erfc(abs(z) / math.sqrt(2))
