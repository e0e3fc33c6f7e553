"""A user-encoder version's item space: where every item sits, learned or by its text.

An item the model saw in training has a learned embedding; every item, seen or not, is
also placed by projecting its content embedding. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from serving.core import bfloat16
from serving.core.encoders import ContentEncoderId


def learned_rows(item_embeddings: np.ndarray) -> np.ndarray:
    """Which rows of a version's learned embeddings training set (it leaves the rows of
    items absent from its data at zero)."""
    learned: np.ndarray = np.any(item_embeddings != 0, axis=1)
    return learned


@dataclass(frozen=True)
class ItemSpace:
    """Learned item embeddings (row i is vocabulary[i]) and the content projection."""

    version: int
    max_len: int
    """History length the model was built for; requests are left-padded to it."""
    vocabulary: tuple[str, ...]
    item_embeddings: np.ndarray | None
    """(len(vocabulary), dim) learned embeddings; None in a space ``served`` from a
    version that holds its items' vectors (``learned_mask`` says which items have one)."""
    projection_weight: np.ndarray
    projection_bias: np.ndarray
    content_encoder: ContentEncoderId | None = None
    """The content encoder the version was trained with (None: not recorded)."""
    known_vectors: np.ndarray | None = None
    """(len(vocabulary), dim) each vocabulary item's vector as the version holds it:
    learned embedding + its content as trained, projected. With it, the version's items
    are where training put them (a later text edit moves them at the next version) and
    the user encoder takes their tokens alone (``input_tokens``); None (versions from
    before): learned embedding + the current content, which every history position
    sends."""

    learned_mask: np.ndarray | None = None
    """(len(vocabulary),) bool: which vocabulary items have a learned embedding; None: read
    off ``item_embeddings``."""
    known_tokens: np.ndarray | None = None
    """In a space an item index keeps ``beyond`` the items it placed: the tokens of the
    ``vocabulary`` it keeps (sorted), a row of ``known_vectors`` each, all learned; None:
    the whole vocabulary, tokens 1..len in order."""

    def served(self) -> ItemSpace:
        """What an orchestrator keeps of this space: with ``known_vectors`` the learned
        embeddings tell only which items have one, so a mask replaces them (a million
        64-d items: 256 MB less per replica)."""
        if self.known_vectors is None or self.item_embeddings is None:
            return self
        return replace(self, item_embeddings=None, learned_mask=self._has_learned[1:])

    def beyond(self, placed: Sequence[str]) -> ItemSpace:
        """What an item index keeps of this space once it holds the vectors and tokens of
        the items ``placed`` (it keeps a learned item's vector whatever its text, as the
        version does): the other learned vocabulary items only, for a history or a
        catalogue that names one later. A million items' vectors, ids and tokens are not
        held twice (some 400 MB)."""
        if self.known_vectors is None:
            return self
        learned = (
            self.known_tokens
            if self.known_tokens is not None
            else np.flatnonzero(self._has_learned[1:]) + 1
        )
        kept = np.setdiff1d(learned, self._tokens(placed))
        rows = self._known_rows(kept)  # of the vocabulary as of the known vectors
        return replace(
            self,
            vocabulary=tuple(self.vocabulary[r] for r in rows),
            known_vectors=self.known_vectors[rows],
            known_tokens=kept,
            learned_mask=None,
        )

    def _known_rows(self, tokens: np.ndarray) -> np.ndarray:
        """The rows of ``known_vectors`` that hold these tokens' vectors."""
        if self.known_tokens is None:
            return tokens - 1
        rows = np.searchsorted(self.known_tokens, tokens)
        held = rows < len(self.known_tokens)
        held[held] = self.known_tokens[rows[held]] == tokens[held]
        if not held.all():
            raise LookupError("the item index holds these items' vectors, not its space")
        return rows

    @property
    def content_dim(self) -> int:
        return int(self.projection_weight.shape[1])

    @cached_property
    def token(self) -> dict[str, int]:
        """Model input id of each vocabulary item (1-based; 0 means no learned embedding)."""
        if self.known_tokens is not None:
            return dict(zip(self.vocabulary, self.known_tokens.tolist(), strict=True))
        return {item_id: i + 1 for i, item_id in enumerate(self.vocabulary)}

    @cached_property
    def _learned(self) -> np.ndarray:
        """Learned embeddings by token; row 0 (no learned embedding) is zero."""
        assert self.item_embeddings is not None, "only a space with known_vectors drops them"
        zero = np.zeros((1, self.item_embeddings.shape[1]), dtype=np.float32)
        return np.concatenate([zero, self.item_embeddings.astype(np.float32)])

    @cached_property
    def _has_learned(self) -> np.ndarray:
        """By token: whether the item has a learned embedding. Token 0 has none, nor has a
        vocabulary row training left at zero (items absent from its data)."""
        if self.learned_mask is not None:
            return np.concatenate([[False], self.learned_mask])
        assert self.item_embeddings is not None
        return np.concatenate([[False], learned_rows(self.item_embeddings)])

    def _learned_of(self, tokens: np.ndarray) -> np.ndarray:
        """Whether the items of these tokens have a learned embedding."""
        if self.known_tokens is not None:
            return tokens > 0  # a space kept beyond the placed items holds learned ones only
        learned: np.ndarray = self._has_learned[tokens]
        return learned

    def _tokens(self, item_ids: Sequence[str]) -> np.ndarray:
        return np.fromiter(
            (self.token.get(i, 0) for i in item_ids), dtype=np.int64, count=len(item_ids)
        )

    @property
    def takes_tokens(self) -> bool:
        """Whether the user encoder holds its items' vectors, so that a history position
        of an item it knows sends no content."""
        return self.known_vectors is not None

    def input_tokens(self, item_ids: Sequence[str]) -> np.ndarray:
        """The user encoder's ITEM_IDS for ``item_ids``: 0 for an item it holds no vector
        of (placed by the content its position sends)."""
        tokens = self._tokens(item_ids)
        return np.where(self._learned_of(tokens), tokens, 0) if self.takes_tokens else tokens

    def project(self, content: np.ndarray) -> np.ndarray:
        """Where content embeddings alone place items (the content part of every vector)."""
        return (content @ self.projection_weight.T + self.projection_bias).astype(np.float32)

    def vectors(
        self, item_ids: Sequence[str], content_of: Callable[[np.ndarray], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Item vectors: learned embedding (zero for items the model never saw) + projection
        of the content embeddings (float32 rows of ``content_of``, by position in
        ``item_ids``); and which items have a learned embedding (the others are placed by
        text alone)."""
        tokens = self._tokens(item_ids)
        learned = self._learned_of(tokens)
        if self.known_vectors is None:
            projected = self._projected(content_of, np.arange(len(tokens)))
            return (self._learned[tokens] + projected).astype(np.float32), learned
        # The version holds its items' vectors: only the others need their text projected.
        vectors = np.empty((len(tokens), self.known_vectors.shape[1]), np.float32)
        positions, rows = np.flatnonzero(learned), self._known_rows(tokens[learned])
        # A chunk at a time: gathering a million rows at once makes a second copy of them.
        for start in range(0, len(positions), bfloat16.CHUNK_ROWS):
            chunk = slice(start, start + bfloat16.CHUNK_ROWS)
            vectors[positions[chunk]] = self.known_vectors[rows[chunk]]
        vectors[~learned] = self._projected(content_of, np.flatnonzero(~learned))
        return vectors, learned

    def _projected(
        self, content_of: Callable[[np.ndarray], np.ndarray], positions: np.ndarray
    ) -> np.ndarray:
        """The projection of the rows at ``positions``, a chunk at a time: the index's
        compact content is made float32 per chunk, never for a million rows at once."""
        out = np.empty((len(positions), self.projection_weight.shape[0]), np.float32)
        for start in range(0, len(positions), bfloat16.CHUNK_ROWS):
            chunk = positions[start : start + bfloat16.CHUNK_ROWS]
            out[start : start + len(chunk)] = self.project(content_of(chunk))
        return out


@dataclass(frozen=True)
class UserEncoding:
    """A user's place in the item space, as the user encoder answers it."""

    vector: np.ndarray
    """(dim,) user vector in the item space."""
    attention: np.ndarray
    """(L,) attention of the latest position over the history."""
    model_version: str
