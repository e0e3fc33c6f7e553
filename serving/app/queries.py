"""Free-text queries as content embeddings, cached by text.

People repeat themselves (the same search box, the same "telescopes for beginners" from
many users), and the content encoder is the most expensive call of a request that has a
query: a bounded least-recently-used cache in front of it keeps repeated queries at the
cost of a dictionary lookup.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from serving.app.ports import Encoders


def cache_key(text: str) -> str:
    """Texts that differ only in surrounding or repeated whitespace embed the same."""
    return " ".join(text.split())


class QueryEmbeddings:
    """The content embedding of a query text, from the content encoder or the cache of the
    ``size`` most recently used ones (0 disables caching)."""

    def __init__(self, encoders: Encoders, size: int) -> None:
        self._encoders = encoders
        self._size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    async def embed(self, text: str) -> np.ndarray:
        """(dim,) normalised content embedding of ``text``; the encoder's Unavailable
        passes through (nothing is cached then)."""
        key = cache_key(text)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return cached
        self.misses += 1
        embedding = await self._encoders.encode_query(key)
        embedding.setflags(write=False)  # shared by every request that asks the same
        if self._size > 0:
            self._cache[key] = embedding
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return embedding
