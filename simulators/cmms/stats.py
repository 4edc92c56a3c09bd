"""Counts of served provisioning calls, so a benchmark can prove a rate limit was never exceeded."""

import time

from pydantic import BaseModel

from simulators.common import Counts

# Per-second counts older than this are dropped; the total and the maximum are kept.
_WINDOW_SECONDS = 600
_CALLS, _WRITES = "calls", "writes"


class StatsView(BaseModel):
    """`GET /_sim/stats`."""

    provisioning_calls: int
    per_second: dict[str, int]
    max_per_second: int
    writes: int


class Stats(Counts):
    """Runtime counters (a restart or `DELETE /_sim/stats` resets them)."""

    def _reset(self) -> None:
        self._max = 0
        self._per_second: dict[int, int] = {}

    def record_call(self) -> None:
        """One provisioning call let through by the faults."""
        self.add(_CALLS)
        second = int(time.time())
        with self._lock:
            count = self._per_second.get(second, 0) + 1
            self._per_second[second] = count
            self._max = max(self._max, count)
            if len(self._per_second) > _WINDOW_SECONDS:
                for old in [s for s in self._per_second if s <= second - _WINDOW_SECONDS]:
                    del self._per_second[old]

    def record_write(self) -> None:
        """One PUT that changed an account."""
        self.add(_WRITES)

    def view(self) -> StatsView:
        """A snapshot."""
        with self._lock:
            return StatsView(
                provisioning_calls=self._counts[_CALLS],
                per_second={str(s): n for s, n in sorted(self._per_second.items())},
                max_per_second=self._max,
                writes=self._counts[_WRITES],
            )
