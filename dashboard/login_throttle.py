"""Throttling of failed operator logins, per operator name and per client address.

After ``free_failures`` failures in a row on a key (an operator name, or a client address),
that key is locked for ``base_delay_s``, and every further failure doubles the lock, up to
``max_delay_s``. While either key of an attempt is locked the attempt is verdict *without
checking the password* (a guess made during a lock learns nothing, and does not count). A
successful login clears both keys; a key quiet for ``forget_after_s`` after its last
failure and its lock is forgotten.

The state lives in the dashboard process (one :class:`LoginThrottle` shared by every
browser session), not in the database: the dashboard runs as one process (its Deployment
has one replica, Streamlit keeps per-tab sessions in memory), a restart is an operator's
act rather than something a guesser can cause, and a table would need a migration and a
write on every failure from anyone who can reach the port. Per name, a guesser gets about
``3600 / max_delay_s`` tries an hour however many addresses they use; per address, the
same across every name they try. The price is that a guesser can keep one operator name
locked (never for longer than ``max_delay_s`` after they stop); the operator can still sign
in as soon as the lock lapses, or under another name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

UNKNOWN_ADDRESS = "local"
"""The address key when the client address is not known (Streamlit reports none for
browsers on localhost)."""


@dataclass
class _Record:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """Whether an attempt may be checked now; if not, for how many more seconds not, and
    which key is locked (``"name"`` or ``"address"``)."""

    allowed: bool
    retry_after_s: float = 0.0
    locked: str = ""


class LoginThrottle:
    """Exponential back-off of failed logins, thread-safe (Streamlit runs each browser
    session's script in its own thread)."""

    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_delay_s: float = 2.0,
        max_delay_s: float = 900.0,
        forget_after_s: float = 3600.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free_failures < 0 or base_delay_s <= 0 or max_delay_s < base_delay_s:
            raise ValueError("free_failures >= 0 and 0 < base_delay_s <= max_delay_s")
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], _Record] = {}

    @staticmethod
    def _keys(name: str, address: str | None) -> tuple[tuple[str, str], tuple[str, str]]:
        # Names are compared as typed after trimming, like the login itself; case-folded
        # so that "Alice" and "alice" share one budget of guesses.
        return ("name", name.strip().casefold()), ("address", address or UNKNOWN_ADDRESS)

    def attempt(self, name: str, address: str | None) -> Verdict:
        """Whether an attempt for ``name`` from ``address`` may be checked now. An allowed
        attempt is counted as a failure at once, in the same critical section as the check
        (so parallel sessions cannot all pass one check), and :meth:`succeeded` clears it
        when the password was right."""
        now = self._clock()
        with self._lock:
            keys = self._keys(name, address)
            records = [self._current(key, now) for key in keys]
            verdict = Verdict(True)
            for key, record in zip(keys, records, strict=True):
                wait = record.locked_until - now if record is not None else 0.0
                if wait > verdict.retry_after_s:
                    verdict = Verdict(False, wait, key[0])
            if not verdict.allowed:
                return verdict
            self._prune(now)
            for key, found in zip(keys, records, strict=True):
                # (Re-inserted if pruning just dropped it: its history still counts.)
                record = self._records.setdefault(key, found if found is not None else _Record())
                record.failures += 1
                record.last_failure = now
                over = record.failures - self.free_failures
                if over > 0:
                    delay = min(self.max_delay_s, self.base_delay_s * 2 ** min(over - 1, 62))
                    record.locked_until = now + delay
            return verdict

    def succeeded(self, name: str, address: str | None) -> None:
        """Forget the failures of both keys after a successful login."""
        with self._lock:
            for key in self._keys(name, address):
                self._records.pop(key, None)

    def failures(self, name: str, address: str | None) -> tuple[int, int]:
        """The failures in a row counted for ``name`` and for ``address``."""
        now = self._clock()
        with self._lock:
            counts = [self._current(key, now) for key in self._keys(name, address)]
        return counts[0].failures if counts[0] else 0, counts[1].failures if counts[1] else 0

    def _current(self, key: tuple[str, str], now: float) -> _Record | None:
        """The key's record, or None once it has been quiet (and unlocked) long enough."""
        record = self._records.get(key)
        if record is not None and self._stale(record, now):
            del self._records[key]
            return None
        return record

    def _stale(self, record: _Record, now: float) -> bool:
        # Quiet measured from the end of the lock: waiting a long lock out is not forgiven.
        return now - max(record.last_failure, record.locked_until) >= self.forget_after_s

    def _prune(self, now: float) -> None:
        """Bound the memory a guesser spraying names or addresses can make us hold: drop
        stale records, then the oldest unlocked ones beyond ``max_keys``."""
        if len(self._records) + 2 <= self.max_keys:  # room for this attempt's two keys
            return
        for key in [k for k, r in self._records.items() if self._stale(r, now)]:
            del self._records[key]
        excess = len(self._records) + 2 - self.max_keys
        if excess > 0:
            unlocked = sorted(
                (r.last_failure, k) for k, r in self._records.items() if r.locked_until <= now
            )
            for _, key in unlocked[:excess]:
                del self._records[key]
