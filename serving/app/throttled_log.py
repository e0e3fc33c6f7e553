"""Warnings that would otherwise repeat on every request (an outage affects them all)."""

from __future__ import annotations

import logging
import math
import time


class ThrottledWarning:
    def __init__(self, logger: logging.Logger, every_s: float) -> None:
        self._log = logger
        self._every_s = every_s
        self._last = -math.inf
        self._suppressed = 0

    def warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self._every_s:
            self._suppressed += 1
            return
        if self._suppressed:
            message += f" ({self._suppressed} more since the last warning)"
        self._log.warning(message, *args)
        self._last, self._suppressed = now, 0
