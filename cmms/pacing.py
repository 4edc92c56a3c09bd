"""Even spacing of CMMS calls, so that no second ever carries more than the CMMS's limit."""

import asyncio
import time


class Pacer:
    """Starts calls evenly spaced, in arrival order, so that no second carries more than `rate` of them.

    Temporal's task-queue rate limit holds the average across every worker but lets short bursts
    through; this holds each process to the limit in every second. The spacing is 5 % wider than
    1/rate: network jitter (a first call slower than the next ones on a warm connection) could
    otherwise squeeze rate + 1 calls into one of the CMMS's seconds.
    """

    SPACING_MARGIN = 1.05

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("a rate limit must be positive")
        self._interval = self.SPACING_MARGIN / rate
        self._next_slot = 0.0

    async def wait(self) -> None:
        """Return when this call may start."""
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval  # reserved before sleeping: callers keep their order
        if slot > now:
            await asyncio.sleep(slot - now)
