"""The explore stage: Thompson sampling on per-item click rates, or epsilon-greedy slots,
with the propensities that make the logged impressions usable for off-policy evaluation."""

from __future__ import annotations

import numpy as np

from serving.core.parameters import Exploration, Parameters


def thompson(params: Parameters) -> bool:
    """Whether ``params`` explore by Thompson sampling."""
    return params.exploration == Exploration.THOMPSON and params.exploration_weight > 0


def epsilon(params: Parameters) -> float:
    """The share of slots that explore at random (0: epsilon-greedy is off)."""
    if params.exploration == Exploration.EPSILON and params.exploration_weight > 0:
        return min(params.exploration_weight, 1.0)
    return 0.0


def with_coldest(
    candidates: np.ndarray, coldest: np.ndarray, allowed: np.ndarray, pool_size: int
) -> np.ndarray:
    """The candidates plus the least-shown allowed items, so exploration can reach them."""
    cold = coldest[allowed[coldest]][: max(10, pool_size // 10)]
    return np.union1d(candidates, cold)


def thompson_bonus(
    weight: float, clicks: np.ndarray, impressions: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One sampled click rate per candidate, weighted: its exploration component."""
    return weight * click_rate_samples(clicks, impressions, rng)[0]


def cold_items(
    allowed: np.ndarray, impressions: np.ndarray, published: np.ndarray, count: int
) -> np.ndarray:
    """The ``count`` allowed items shown least so far (the newest first among equals, then
    the lower position): they join the candidate pool so exploration can reach them.

    Sorting every allowed item costs a quarter of a second at a million items: two
    partitions first keep only the ones that can make the list (the ``count`` least
    shown and their ties), and those are sorted."""
    positions = np.flatnonzero(allowed)
    if positions.size == 0 or count <= 0:
        return positions[:0]
    shown = impressions[positions]
    if positions.size > count:
        edge = np.partition(shown, count - 1)[count - 1]
        keep = shown < edge  # fewer than count: all of them make the list
        ties = np.flatnonzero(shown == edge)
        needed = count - int(np.count_nonzero(keep))
        if needed < ties.size:
            newest = _newest_first(published[positions[ties]])
            ties = ties[newest <= np.partition(newest, needed - 1)[needed - 1]]
        keep[ties] = True
        positions, shown = positions[keep], shown[keep]
    order = np.lexsort((_newest_first(published[positions]), shown))
    return positions[order[:count]]


def _newest_first(published: np.ndarray) -> np.ndarray:
    """A sort key putting the latest publication first, unknown dates last."""
    return -np.nan_to_num(published, nan=-np.inf)


def click_rate_samples(
    clicks: np.ndarray, impressions: np.ndarray, rng: np.random.Generator, draws: int = 1
) -> np.ndarray:
    """Draws from each item's Beta(1 + clicks, 1 + misses) posterior, shape (draws, n).

    An item never clicked (most of a catalogue) has Beta(1, b), drawn by inverting its
    CDF 1 - (1 - x)^b: one uniform and two elementwise functions, where numpy's beta
    draws two gamma variates (Beta(1, 1) by rejection); the Thompson stage's draws were
    the largest part of a ranking (``python -m benchmarks.retrieval``)."""
    misses = np.maximum(impressions - clicks, 0.0)
    samples = np.empty((draws, clicks.shape[0]))
    unclicked = clicks == 0
    # x = 1 - U^(1/b) as -expm1(log(U) / b): exact where U^(1/b) is close to 1. U in
    # (0, 1], never 0: no log(0).
    uniform = 1.0 - rng.random((draws, int(np.count_nonzero(unclicked))))
    samples[:, unclicked] = -np.expm1(np.log(uniform) / (1.0 + misses[unclicked]))
    clicked = ~unclicked
    samples[:, clicked] = rng.beta(
        1.0 + clicks[clicked], 1.0 + misses[clicked], size=(draws, int(np.count_nonzero(clicked)))
    )
    return samples


def inclusion_propensity(
    base: np.ndarray,
    weight: float,
    clicks: np.ndarray,
    impressions: np.ndarray,
    k: int,
    rng: np.random.Generator,
    listed: np.ndarray,
    draws: int = 16,
) -> np.ndarray:
    """Estimated probability that each row lands in the top ``k`` of
    ``base + weight x sampled click rate``: the share of ``draws`` fresh samples in which
    it does, with the realised draw as one more sample (it put the ``listed`` rows in the
    list; so a listed row's estimate is never zero).

    Samples lie in [0, 1], so a row whose best case (``base + weight``) is below the k-th
    best worst case (``base``) can never make the list: only contenders are simulated.
    """
    n = base.shape[0]
    k = min(k, n)
    if k == n:
        return np.ones(n)
    counts = listed.astype(float)
    threshold = np.partition(base, n - k)[n - k]
    contenders = np.flatnonzero(base + weight >= threshold)
    sampled = click_rate_samples(clicks[contenders], impressions[contenders], rng, draws)
    scores = base[contenders][None, :] + weight * sampled
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    counts[contenders] += np.bincount(top.ravel(), minlength=contenders.size)
    return counts / (draws + 1.0)


def epsilon_slots(
    chosen: np.ndarray, allowed: np.ndarray, epsilon: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Each slot shows, with probability ``epsilon``, a uniformly random allowed item not
    already in the list. Returns the positions, which slots explored, each shown item's
    probability of being in the list, and that probability for any allowed item outside
    ``chosen``: a chosen item stays unless its slot explores (1 - epsilon); the
    k x epsilon explored slots on average draw from the pool without replacement."""
    positions = chosen.copy()
    explored = rng.random(len(chosen)) < epsilon
    pool = np.setdiff1d(np.flatnonzero(allowed), chosen, assume_unique=False)
    available = max(len(pool), 1)
    if explored.any() and len(pool):
        picks = rng.choice(pool, size=min(int(explored.sum()), len(pool)), replace=False)
        slots = np.flatnonzero(explored)[: len(picks)]
        positions[slots] = picks
        explored[:] = False
        explored[slots] = True
    else:
        explored[:] = False
    floor = min(1.0, len(chosen) * epsilon / available)
    propensity = np.where(explored, floor, 1.0 - epsilon)
    return positions, explored, propensity, floor
