"""The typed Python SDK: ``RecsysClient`` (blocking) and ``AsyncRecsysClient`` (asyncio)."""

from serving.client.aio import AsyncRecsysClient
from serving.client.sync import RecsysClient
from serving.client.types import Event, FeedbackResult, ParameterPreview
from serving.core.domain import Recommendation, ScoredItem, SimilarList

__all__ = [
    "AsyncRecsysClient",
    "Event",
    "FeedbackResult",
    "ParameterPreview",
    "Recommendation",
    "RecsysClient",
    "ScoredItem",
    "SimilarList",
]
