"""The ranking stages, each a small pure unit (numpy): retrieve, filter, blend (with the
signals it weighs), explore, diversify, explain; ``pipeline`` composes them."""

from serving.core.ranking.blend import Blend, blend, negative_similarity
from serving.core.ranking.diversify import diversify
from serving.core.ranking.explain import because
from serving.core.ranking.filter import allowed_mask
from serving.core.ranking.retrieve import top_k
from serving.core.ranking.signals import (
    decayed_popularity,
    freshness_signal,
    popularity_signal,
    relevance_signal,
)

__all__ = [
    "Blend",
    "allowed_mask",
    "because",
    "blend",
    "decayed_popularity",
    "diversify",
    "freshness_signal",
    "negative_similarity",
    "popularity_signal",
    "relevance_signal",
    "top_k",
]
