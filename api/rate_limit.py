"""A small in-process sliding-window rate limiter (per API process: enough for one API, as `make run` runs)."""

import math
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """At most `limit` hits per key in any `window` seconds; a refused hit is not counted."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._calls = 0

    def hit(self, key: str, limit: int, window: float) -> int | None:
        """Count one hit for `key`; None when allowed, else the whole seconds until one is."""
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            return max(1, math.ceil(hits[0] + window - now))
        hits.append(now)
        self._calls += 1
        if self._calls % 1000 == 0:
            self._forget_idle(now, window)
        return None

    def _forget_idle(self, now: float, window: float) -> None:
        # Keys whose newest hit is out of the window hold nothing: drop them so memory stays bounded.
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - window]:
            del self._hits[key]
