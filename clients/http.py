"""What every HTTP client of an outside system here (the CMMS, PortaBilling) reads the same way."""

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

# 408 and 429 are 4xx by number but say "try again later".
RETRYABLE_4XX = frozenset({408, 429})


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (given as seconds or as an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
