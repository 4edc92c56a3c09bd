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
        self._turn = asyncio.Lock()  # FIFO: callers go in arrival order

    async def wait(self) -> None:
        """Return when this call may start: `1/rate` (and the margin) after the previous one did.

        The spacing is measured from when the previous call was really let go, not from when it was
        due: a busy event loop that wakes several callers late must not let them go out together.
        """
        async with self._turn:
            delay = self._next_slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next_slot = time.monotonic() + self._interval
