"""Off-policy preview over a real stack: the logging policy's own estimate matches its
observed CTR, a candidate that hides the clicked category loses its clicks, and category
rules apply per experiment variant."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter

import grpc
import psycopg
import pytest

from serving.client import Event, RecsysClient
from serving.core.experiments import Experiment, Variant
from tests.integration.platform import Running, set_parameters

pytestmark = pytest.mark.integration
LISTS = 120
K = 10


def item_categories(platform: Running) -> dict[str, tuple[str, ...]]:
    with psycopg.connect(platform.url) as conn:
        rows = conn.execute("SELECT item_id, categories FROM items WHERE deleted_at IS NULL")
        return {item_id: tuple(categories) for item_id, categories in rows}


def logged_lists(platform: Running, users: list[str]) -> int:
    with psycopg.connect(platform.url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM recommendations WHERE user_id = ANY(%s)", (users,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def sessions(
    client: RecsysClient, categories: dict[str, tuple[str, ...]], liked: str, seed: int
) -> tuple[list[str], int, int]:
    """LISTS users who click one item of ``liked`` and then, of the list they are shown,
    each ``liked`` item with probability 0.4. Returns the users, impressions and clicks."""
    rng = random.Random(seed)
    seeds = sorted(i for i, c in categories.items() if liked in c)
    users, shown, clicks = [], 0, 0
    for n in range(LISTS):
        user = f"ope-{uuid.uuid4()}"
        users.append(user)
        client.log_feedback([Event(seeds[n % len(seeds)], "click", user_id=user)])
        rec = client.recommend(user, k=K)
        hits = [i for i in rec.item_ids if liked in categories[i] and rng.random() < 0.4]
        shown, clicks = shown + len(rec.items), clicks + len(hits)
        if hits:
            client.log_feedback(
                [
                    Event(i, "click", user_id=user, recommendation_id=rec.recommendation_id)
                    for i in hits
                ]
            )
    return users, shown, clicks


def test_ips_matches_the_logging_policy_and_predicts_a_new_one(
    platform: Running, client: RecsysClient, restore_parameters
):
    # A stationary logging policy: epsilon-greedy with popularity off (popularity moves
    # with the very clicks logged here, and a replay ranks with today's signals).
    set_parameters(client, exploration="epsilon", exploration_weight=0.5, popularity_weight=0.0)
    categories = item_categories(platform)
    liked = Counter(c[0] for c in categories.values() if c).most_common(1)[0][0]
    users, shown, clicks = sessions(client, categories, liked, seed=7)
    deadline = time.monotonic() + 30  # generous: impressions are written in batches
    while logged_lists(platform, users) < LISTS:
        assert time.monotonic() < deadline, "impressions were not written"
        time.sleep(0.1)

    same = client.preview_parameters({}, hours=1, sample=LISTS)
    assert (same.recommendations, same.impressions) == (LISTS, shown)
    assert same.logged_ctr == pytest.approx(clicks / shown)
    assert abs(same.ips_ctr - same.logged_ctr) <= 3 * same.ips_standard_error + 0.01
    assert abs(same.snips_ctr - same.logged_ctr) <= 0.02
    assert same.effective_sample_size > shown / 2

    # Less exploration: estimated from these logs, then measured on new users.
    greedier = client.preview_parameters({"exploration_weight": 0.1}, hours=1, sample=LISTS)
    hidden = client.preview_parameters(
        {"exclude_categories": [liked]}, hours=1, sample=LISTS, users=users[:3]
    )
    set_parameters(client, exploration_weight=0.1)
    _, shown_after, clicks_after = sessions(client, categories, liked, seed=8)
    observed = clicks_after / shown_after
    noise = (greedier.ips_standard_error**2 + observed * (1 - observed) / shown_after) ** 0.5
    assert greedier.ips_ctr > same.ips_ctr
    assert abs(greedier.ips_ctr - observed) <= 3 * noise + 0.02, (greedier, observed)

    # A candidate that never shows the clicked category is estimated to lose its clicks.
    assert hidden.ips_ctr == 0.0
    for user in hidden.users:
        assert len(user.before) == len(user.after) == K
        assert not any(liked in categories[i] for i in user.after)
    assert any(liked in categories[i] for user in hidden.users for i in user.before)


def test_preview_rejects_bad_requests_naming_the_field(platform: Running, client: RecsysClient):
    for changes, field in (
        ({"diversity_lambda": -1.0}, "parameters.diversity_lambda"),
        ({"exclude_categories": [" "]}, "parameters.exclude_categories"),
    ):
        with pytest.raises(grpc.RpcError) as error:
            client.preview_parameters(changes)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.value.details().startswith(field)
    with pytest.raises(grpc.RpcError) as error:
        client.preview_parameters({}, sample=10**6)
    assert error.value.details().startswith("sample")
    with (
        RecsysClient(platform.target, retries=0) as anonymous,
        pytest.raises(grpc.RpcError) as error,
    ):
        anonymous.preview_parameters({})
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_category_rules_apply_per_variant(platform: Running, client: RecsysClient):
    categories = item_categories(platform)
    common = Counter(c[0] for c in categories.values() if c).most_common(2)
    banned, only = common[0][0], common[1][0]
    name = f"rules-{uuid.uuid4().hex[:8]}"
    variants = [
        Variant("control", 0.5),
        Variant("curated", 0.5, {"exclude_categories": [banned]}),
    ]
    client.create_experiment(name, variants, changed_by="ana", reason="test")
    try:
        experiment = Experiment(name, tuple(variants))
        users = [f"user-{uuid.uuid4()}" for _ in range(30)]
        # A user outside "control": before the experiment is in force everyone is "control".
        probe = next(u for u in users if experiment.assign(u).name == "curated")
        deadline = time.monotonic() + 5
        while client.recommend(probe, k=1).variant != "curated":
            assert time.monotonic() < deadline, "experiment not in force"
            time.sleep(0.02)
        seen = {"control": 0, "curated": 0}
        for user in users:
            rec = client.recommend(user, k=30)
            banned_shown = sum(banned in categories[i] for i in rec.item_ids)
            seen[rec.variant] += banned_shown
            # A request's own rule narrows the variant's further.
            narrowed = client.recommend(user, k=10, context={"include_categories": only})
            assert all(only in categories[i] for i in narrowed.item_ids)
            assert rec.variant != "curated" or banned_shown == 0
        assert seen["control"] > 0 and seen["curated"] == 0
    finally:
        client.stop_experiment(name, changed_by="ana", reason="test over")
