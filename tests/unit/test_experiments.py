from collections import Counter

import pytest

from serving.core.errors import InvalidArgument
from serving.core.experiments import Experiment, Variant
from serving.core.parameters import Parameters
from serving.core.validation import validate_variants

EXPERIMENT = Experiment(
    "blend-test",
    (
        Variant("control", 0.5),
        Variant("popular", 0.3, {"popularity_weight": 0.6}),
        Variant("fresh", 0.2, {"freshness_weight": 0.5}),
    ),
)


def test_assignment_is_stable_per_user():
    assert all(EXPERIMENT.assign(f"u{i}") == EXPERIMENT.assign(f"u{i}") for i in range(100))


def test_assignment_matches_the_shares_on_ten_thousand_users():
    counts = Counter(EXPERIMENT.assign(f"user-{i}").name for i in range(10_000))
    for variant in EXPERIMENT.variants:
        assert abs(counts[variant.name] / 10_000 - variant.share) < 0.02


def test_experiments_assign_independently():
    other = Experiment("other", EXPERIMENT.variants)
    same = sum(EXPERIMENT.assign(f"u{i}") == other.assign(f"u{i}") for i in range(2000))
    assert 0.3 * 2000 < same < 0.45 * 2000  # 0.5^2 + 0.3^2 + 0.2^2 = 0.38 by chance


def test_variant_parameters_override_the_base():
    base = Parameters(popularity_weight=0.1, relevance_weight=2.0)
    popular = EXPERIMENT.variants[1].parameters(base)
    assert popular.popularity_weight == 0.6 and popular.relevance_weight == 2.0


@pytest.mark.parametrize(
    ("variants", "field"),
    [
        ([], "variants"),
        ([Variant("a", 0.5), Variant("b", 0.4)], "variants"),
        ([Variant("a", 0.5), Variant("a", 0.5)], "variants[1].name"),
        ([Variant("", 1.0)], "variants[0].name"),
        ([Variant("a", 1.5), Variant("b", -0.5)], "variants[0].share"),
        (
            [Variant("a", 1.0, {"candidate_pool_size": 1})],
            "variants[0].parameters.candidate_pool_size",
        ),
        ([Variant("a", 1.0, {"bogus": 1})], "variants[0].parameters.bogus"),
    ],
)
def test_bad_variants_name_the_field(variants, field):
    with pytest.raises(InvalidArgument) as error:
        validate_variants(variants)
    assert error.value.field == field
