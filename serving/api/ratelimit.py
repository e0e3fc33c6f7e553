"""Per-client token buckets: how much each client may send, and who a client is."""

from __future__ import annotations

import time
from collections.abc import Callable


def client_key(peer: str) -> str:
    """The client behind a gRPC peer string: its address without the port, so one host's
    connections share a bucket (``ipv4:10.0.0.7:51234`` -> ``ipv4:10.0.0.7``)."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer


class TokenBuckets:
    """``rate`` units per second per key, up to ``burst`` saved up; ``rate`` 0 = unlimited."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, cost: float) -> bool:
        """Take ``cost`` units from ``key``'s bucket if it holds them (nothing otherwise)."""
        if self.rate <= 0:
            return True
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        if key not in self._buckets and len(self._buckets) >= self._max_keys:
            self._forget_full(now)
        self._buckets[key] = (tokens, now)
        return allowed

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled: they hold no state worth keeping, and a
        stream of one-off clients must not grow memory without bound."""
        for key, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * self.rate >= self.burst:
                del self._buckets[key]
