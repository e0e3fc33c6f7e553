"""Synthetic users with hidden tastes, for demo traffic and demo training data.

A taste is a distribution over categories: each user likes 1-3 categories and keeps a
small appetite for the rest. Histories drawn from it are sequentially coherent (runs
within a category, sometimes the next item of a series), so the next item's category
is predictable from the recent ones: the user encoder has something to learn.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from serving.core.domain import EventType, Item

LIKED_MASS = 0.9
"""Share of a user's attention on the categories they like; the rest is curiosity."""

_CLICK_FLOOR = 0.03
_CLICK_CEILING = 0.6

# Histories: how likely a run continues in the current category, and how often the
# next pick is the next item of the same "series" (catalogue order within a category).
_STAY = 0.75
_SERIES = 0.3
_NEGATIVE_SHARE = 0.08
# Given a positive interaction, which kind it is (the rest are plain clicks).
_POSITIVE_KINDS: tuple[tuple[EventType, float], ...] = (
    (EventType.LIKE, 0.10),
    (EventType.ADD_TO_CART, 0.08),
    (EventType.PURCHASE, 0.05),
)


@dataclass(frozen=True)
class Taste:
    """The hidden preferences of one synthetic user."""

    user_id: str
    weights: dict[str, float]
    """Category -> share of attention; sums to 1 over all categories."""
    liked: tuple[str, ...] = field(default=())
    """The 1-3 categories the user really likes (strongest first)."""

    def affinity(self, item: Item) -> float:
        """How much the user likes ``item``, in [0, 1] (1 = their favourite category)."""
        top = max(self.weights.values(), default=0.0)
        if top <= 0.0 or not item.categories:
            return 0.0
        return max(self.weights.get(c, 0.0) for c in item.categories) / top

    def likes(self, item: Item) -> bool:
        """Whether ``item`` belongs to one of the liked categories."""
        return any(c in self.liked for c in item.categories)


def make_tastes(n_users: int, categories: list[str], seed: int) -> list[Taste]:
    """``n_users`` tastes (ids ``user-00000`` ...) over ``categories``, deterministic for
    ``seed``: 1-3 liked categories share 90% of the attention, the others split 10%."""
    if not categories:
        raise ValueError("categories must not be empty")
    rng = random.Random(seed)
    tastes = []
    for index in range(n_users):
        count = min(len(categories), rng.choice((1, 2, 2, 3)))
        liked = rng.sample(categories, count)
        raw = [rng.uniform(0.5, 1.5) for _ in liked]
        others = [c for c in categories if c not in liked]
        mass = LIKED_MASS if others else 1.0
        weights = {c: mass * r / sum(raw) for c, r in zip(liked, raw, strict=True)}
        for category in others:
            weights[category] = (1.0 - mass) / len(others)
        liked.sort(key=lambda c: -weights[c])
        tastes.append(Taste(f"user-{index:05d}", weights, tuple(liked)))
    return tastes


def click_probability(taste: Taste, item: Item) -> float:
    """Chance that the user clicks ``item`` when shown at the top position: about 0.6 for
    their favourite category, a few percent outside their tastes."""
    affinity = taste.affinity(item)
    if not taste.likes(item):
        # Curiosity, not taste: flat and low whatever the (small) weight.
        affinity = min(affinity, 0.1)
    return _CLICK_FLOOR + (_CLICK_CEILING - _CLICK_FLOOR) * affinity


def _weighted_choice(rng: random.Random, weights: dict[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def _positive_type(rng: random.Random) -> EventType:
    draw = rng.random()
    for kind, share in _POSITIVE_KINDS:
        if draw < share:
            return kind
        draw -= share
    return EventType.CLICK


def synthetic_histories(
    items: Sequence[Item], tastes: Sequence[Taste], length: int, seed: int
) -> list[list[tuple[str, EventType]]]:
    """Per taste (same order), ``length`` interactions, oldest first.

    Positive interactions (mostly CLICK, some LIKE / ADD_TO_CART / PURCHASE) follow a
    Markov chain over categories whose stationary distribution is the taste: a run stays
    in its category with probability 0.75, else the next category is drawn from the taste.
    Within a category, 30% of picks are the next item of the previous one's "series"
    (catalogue order), the rest favour popular (low-index) items. About 8% are SKIP or
    DISLIKE on items outside the liked categories.
    """
    rng = random.Random(seed)
    by_category: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if item.categories:
            by_category.setdefault(item.categories[0], []).append(index)
    if not by_category:
        raise ValueError("items must carry categories")
    histories = []
    for taste in tastes:
        weights = {c: w for c, w in taste.weights.items() if c in by_category}
        if not weights:
            weights = dict.fromkeys(by_category, 1.0)
        disliked_pool = [c for c in by_category if c not in taste.liked] or list(by_category)
        history: list[tuple[str, EventType]] = []
        seen: set[int] = set()
        category = _weighted_choice(rng, weights)
        position = -1
        while len(history) < length:
            if rng.random() < _NEGATIVE_SHARE:
                kind = EventType.SKIP if rng.random() < 0.7 else EventType.DISLIKE
                history.append((_unliked_item(rng, items, by_category, disliked_pool, taste), kind))
                continue
            if rng.random() >= _STAY:
                new_category = _weighted_choice(rng, weights)
                if new_category != category:
                    category, position = new_category, -1
            pool = by_category[category]
            position = _next_position(rng, pool, position, seen)
            seen.add(pool[position])
            history.append((items[pool[position]].item_id, _positive_type(rng)))
        histories.append(history)
    return histories


def _next_position(rng: random.Random, pool: list[int], previous: int, seen: set[int]) -> int:
    """The index into ``pool`` of the next item: the next in series, or a popular one."""
    if previous >= 0 and rng.random() < _SERIES and previous + 1 < len(pool):
        return previous + 1
    for _ in range(8):
        # Popularity: a squared uniform puts more mass on the head of the category.
        candidate = int(len(pool) * rng.random() ** 2)
        if pool[candidate] not in seen:
            return candidate
    return candidate


def _unliked_item(
    rng: random.Random,
    items: Sequence[Item],
    by_category: dict[str, list[int]],
    categories: list[str],
    taste: Taste,
) -> str:
    """An item outside the liked categories (a second category may be a liked one)."""
    for _ in range(8):
        item = items[rng.choice(by_category[rng.choice(categories)])]
        if not taste.likes(item):
            break
    return item.item_id
