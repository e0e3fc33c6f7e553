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

    @property
    def exploitation(self) -> np.ndarray:
        """Everything but the exploration bonus."""
        return self.relevance + self.popularity + self.freshness - self.negative_feedback

    @property
    def total(self) -> np.ndarray:
        return self.exploitation + self.exploration

    def components(self, row: int) -> dict[str, float]:
        return {
            "relevance": float(self.relevance[row]),
            "popularity": float(self.popularity[row]),
            "freshness": float(self.freshness[row]),
            "negative_feedback": -float(self.negative_feedback[row]),
            "exploration": float(self.exploration[row]),
        }


def blend(
    params: Parameters,
    relevance: np.ndarray,
    popularity: np.ndarray,
    freshness: np.ndarray,
    negative: np.ndarray,
    exploration: np.ndarray | None = None,
) -> Blend:
    """Weight the signals (each in [0, 1]) of the candidates; ``exploration`` comes
    already weighted (see serving.core.ranking.explore)."""
    return Blend(
        relevance=params.relevance_weight * relevance,
        popularity=params.popularity_weight * popularity,
        freshness=params.freshness_weight * freshness,
        negative_feedback=params.negative_feedback_penalty * negative,
        exploration=np.zeros_like(relevance) if exploration is None else exploration,
    )
