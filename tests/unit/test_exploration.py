import numpy as np

from serving.core.ranking import explore as exploration


def test_cold_items_are_the_least_shown_newest_first():
    allowed = np.array([True, True, True, False, True])
    impressions = np.array([5.0, 0.0, 0.0, 0.0, 1.0])
    published = np.array([1.0, 10.0, 20.0, 30.0, np.nan])
    assert exploration.cold_items(allowed, impressions, published, 3).tolist() == [2, 1, 4]
    assert exploration.cold_items(allowed, impressions, published, 0).tolist() == []


def test_click_rate_samples_follow_the_posterior():
    rng = np.random.default_rng(0)
    samples = exploration.click_rate_samples(
        np.array([0.0, 900.0]), np.array([0.0, 1000.0]), rng, draws=4000
    )
    assert abs(samples[:, 0].mean() - 0.5) < 0.02 and samples[:, 0].std() > 0.25  # unknown
    assert abs(samples[:, 1].mean() - 0.9) < 0.01 and samples[:, 1].std() < 0.02  # known


def test_click_rate_samples_of_unclicked_items_have_the_beta_1_b_distribution():
    # Drawn through the inverse CDF, not numpy's beta: the same law, checked by the
    # Kolmogorov-Smirnov distance to the exact CDF 1 - (1 - x)^b (5,000 draws: the 1%
    # critical value is 0.023) and beside numpy's own beta draws.
    rng = np.random.default_rng(3)
    for misses in (0.0, 3.0, 40.0, 20_000.0):
        b = 1.0 + misses
        drawn = exploration.click_rate_samples(np.zeros(1), np.array([misses]), rng, draws=5000)
        samples = drawn[:, 0]
        assert ((samples >= 0) & (samples <= 1)).all()
        x = np.sort(samples)
        exact = 1.0 - (1.0 - x) ** b
        steps = np.arange(1, x.size + 1) / x.size
        assert max(np.abs(steps - exact).max(), np.abs(steps - 1 / x.size - exact).max()) < 0.023
        assert abs(samples.mean() - rng.beta(1.0, b, 5000).mean()) < 4 * samples.std() / 50


def test_inclusion_propensity_is_certain_for_dominant_items_and_shared_otherwise():
    rng = np.random.default_rng(0)
    base = np.array([5.0, 0.0, 0.0, 0.0, -3.0])
    clicks, shown = np.zeros(5), np.zeros(5)
    listed = np.array([True, True, False, False, False])
    p = exploration.inclusion_propensity(base, 1.0, clicks, shown, 2, rng, listed, draws=400)
    assert p[0] == 1.0
    assert np.allclose(p[1:4], 1 / 3, atol=0.07)  # the second slot goes to one of three
    assert p[1] > 0  # it was shown
    assert p[4] == 0.0  # even its best draw cannot beat the worst of the others


def test_epsilon_slots_replace_with_unseen_items_and_report_propensities():
    rng = np.random.default_rng(1)
    chosen = np.array([0, 1, 2])
    allowed = np.ones(10, bool)
    positions, explored, p, floor = exploration.epsilon_slots(chosen, allowed, 1.0, rng)
    assert explored.all() and set(positions).isdisjoint({0, 1, 2})
    assert np.allclose(p, 3 / 7) and floor == 3 / 7  # three slots draw from seven items
    positions, explored, p, floor = exploration.epsilon_slots(chosen, allowed, 0.0, rng)
    assert positions.tolist() == [0, 1, 2] and not explored.any() and np.allclose(p, 1.0)
    assert floor == 0.0


def test_epsilon_propensities_match_simulated_inclusion_rates():
    rng = np.random.default_rng(2)
    chosen, allowed = np.array([0, 1, 2, 3]), np.ones(12, bool)
    shown = np.zeros(12)
    for _ in range(4000):
        positions, _, _, floor = exploration.epsilon_slots(chosen, allowed, 0.25, rng)
        shown[positions] += 1
    assert np.allclose(shown[:4] / 4000, 0.75, atol=0.03)
    assert np.allclose(shown[4:] / 4000, floor, atol=0.03)
