"""The blend stage: each candidate's signals weighted by the parameters into one score,
with the negative-feedback demotion. Pure numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.core.parameters import Parameters


def negative_similarity(content: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """For each row of ``content``, its highest cosine similarity to a negative item (>= 0)."""
    if negatives.shape[0] == 0:
        return np.zeros(content.shape[0])
    return np.maximum((content @ negatives.T).max(axis=1), 0.0)


@dataclass(frozen=True)
class Blend:
    """Per-candidate weighted components; ``total`` is what the ranking sorts by."""

    relevance: np.ndarray
    popularity: np.ndarray
    freshness: np.ndarray
    negative_feedback: np.ndarray
    exploration: np.ndarray
    query: np.ndarray | None = None
    """The query's part of relevance; None when the request has no query."""

    @property
    def exploitation(self) -> np.ndarray:
        """Everything but the exploration bonus."""
        total = self.relevance + self.popularity + self.freshness - self.negative_feedback
        return total if self.query is None else total + self.query

    @property
    def query_driven(self) -> np.ndarray:
        """Mask of the candidates whose relevance owes more to the query than to the
        history (the explanation names the query, not history items)."""
        if self.query is None:
            return np.zeros(self.relevance.shape[0], bool)
        return self.query > self.relevance

    @property
    def total(self) -> np.ndarray:
        return self.exploitation + self.exploration

    def components(self, row: int) -> dict[str, float]:
        """The weighted parts of one candidate's score ("query" only with a query)."""
        parts = {
            "relevance": float(self.relevance[row]),
            "popularity": float(self.popularity[row]),
            "freshness": float(self.freshness[row]),
            "negative_feedback": -float(self.negative_feedback[row]),
            "exploration": float(self.exploration[row]),
        }
        if self.query is not None:
            parts["query"] = float(self.query[row])
        return parts


def query_share(params: Parameters, has_user_vector: bool) -> float:
    """The query's share of relevance: ``query_weight``, or all of it when there is no
    user vector (no history, or no model) to share with."""
    return params.query_weight if has_user_vector else 1.0


def blend(
    params: Parameters,
    relevance: np.ndarray,
    popularity: np.ndarray,
    freshness: np.ndarray,
    negative: np.ndarray,
    exploration: np.ndarray | None = None,
    query: np.ndarray | None = None,
    share: float = 0.0,
) -> Blend:
    """Weight the signals (each in [0, 1]) of the candidates; ``exploration`` comes
    already weighted (see serving.core.ranking.explore). With a ``query`` signal,
    relevance is ``(1 - share) x history + share x query``, both under relevance_weight."""
    history_share = 1.0 if query is None else 1.0 - share
    return Blend(
        relevance=params.relevance_weight * history_share * relevance,
        popularity=params.popularity_weight * popularity,
        freshness=params.freshness_weight * freshness,
        negative_feedback=params.negative_feedback_penalty * negative,
        exploration=np.zeros_like(relevance) if exploration is None else exploration,
        query=None if query is None else params.relevance_weight * share * query,
    )
