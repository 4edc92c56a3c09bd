"""What every HTTP client of an outside system here (the CMMS, PortaBilling, Kannel) shares: one
connection pool's lifecycle, one error hierarchy, and the reading of an answer that is not a success.

The hierarchy tells a caller (a Temporal activity) whether to try again:

- `Unavailable`: retryable. The system is down, overloaded, slow or unreachable (5xx, 408, 429,
  timeouts, connection errors); `status` and `retry_after` say what it answered, if anything.
- `Misconfigured`, a kind of `Unavailable`: retryable too, but no outage passes by itself: the system
  answers and will not serve us (credentials refused, a wrong URL), so an operator must act; nothing
  about the request is wrong, so nothing is given up.
- `Rejected`: permanent. The system understood the request and refuses it; `reason` is its reason.

Each client has its own kinds (`CmmsRejected`, `PortaBillingUnavailable`, `SmsRejected`, ...),
subclasses of these and of the client's own base error, so a caller catches either. No error ever
carries a secret the client holds (a token, a password) or sent (an account's password): every text
that came from outside goes through the client's `Scrubber` first.
"""

import math
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, ClassVar, Self

import httpx

# 408 and 429 are 4xx by number but say "try again later".
RETRYABLE_4XX = frozenset({408, 429})
# The longest reason (an outside system's words) an error message quotes.
REASON_MAX = 300
# Sized for about 100 calls in flight from one worker.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)


class ClientError(Exception):
    """Any failure of a call to an outside system; the message says what went wrong, in words."""


class Unavailable(ClientError):
    """Retryable: the system is down, overloaded, slow or unreachable."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Misconfigured(Unavailable):
    """Retryable, but no passing outage: the system answers and will not serve us (our credentials
    refused, a wrong URL, an API it does not have); an operator must act."""


class Rejected(ClientError):
    """Permanent: the system refused the request for a reason of its own (`reason`, its words)."""

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def is_retryable(status: int) -> bool:
    """Whether an answer with this status says "try again later" (5xx, 408, 429)."""
    return status >= 500 or status in RETRYABLE_4XX


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


def clipped(text: str, limit: int = REASON_MAX) -> str:
    """The text, cut to `limit` characters (an ellipsis says it was)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reason_of(response: httpx.Response) -> str:
    """The reason an answer gives: its JSON `detail` (FastAPI's validation errors, or a text) or
    `faultstring`, else its body's text, else its status's phrase. Whole: scrub it, then clip it
    (clipped first, a secret cut in two would no longer be found)."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    detail = payload.get("detail", payload.get("faultstring")) if isinstance(payload, dict) else None
    if isinstance(detail, list):
        # Validation errors: where and what, never the input (it may hold a password).
        reason = "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg', '')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    elif detail:
        reason = str(detail)
    else:
        reason = " ".join(response.text.split()) or response.reason_phrase
    return reason


class Scrubber:
    """Removes the secrets a client holds from a text that came from outside: those it was made with
    (a password, a fixed token) and the few most recent it was given since (session tokens)."""

    RECENT = 3

    def __init__(self, *secrets: str) -> None:
        self._fixed = tuple(s for s in secrets if s)
        self._recent: deque[str] = deque(maxlen=self.RECENT)

    def add(self, secret: str) -> None:
        """Scrub this one too (a new session token, say)."""
        if secret:
            self._recent.append(secret)

    def __call__(self, text: str, *more: str) -> str:
        """The text with every secret, and `more` (the request's own), replaced by `***`."""
        for secret in (*self._fixed, *self._recent, *more):
            if secret:
                text = text.replace(secret, "***")
        return text


class HttpClient:
    """One connection pool to one outside system; share it, and close it with `aclose()` or `async with`.

    A subclass names the system (`service`, in every message) and its own error kinds; `_request`
    turns a timeout or a connection failure into its `Unavailable` kind, scrubbed, and
    `_error_for` an answer that is not a success into one of its kinds.
    """

    service: ClassVar[str]
    unavailable: ClassVar[type[Unavailable]] = Unavailable
    misconfigured: ClassVar[type[Misconfigured]] = Misconfigured
    rejected: ClassVar[type[Rejected]] = Rejected

    def __init__(
        self,
        *,
        base_url: str = "",
        timeout: float,
        headers: dict[str, str] | None = None,
        secrets: Iterable[str] = (),
        limits: httpx.Limits = POOL_LIMITS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._scrub = Scrubber(*secrets)
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, limits=limits, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _request(
        self, method: str, url: str, what: str, *, secrets: tuple[str, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        """Send; a timeout or a connection failure is the client's `Unavailable` (`what` names the call)."""
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise self._unreachable(f"{self.service} {what}: timed out ({type(exc).__name__})", exc) from None
        except httpx.TransportError as exc:
            # `from None`: the transport error's text is not ours to vouch for; ours is scrubbed.
            reason = self._scrub(str(exc) or type(exc).__name__, *secrets)
            raise self._unreachable(f"{self.service} {what}: unreachable ({reason})", exc) from None

    def _unreachable(self, message: str, exc: httpx.TransportError) -> Unavailable:
        """The error for a call that got no answer."""
        return self.unavailable(message)

    def _error_for(self, response: httpx.Response, what: str, reason: str, *, rejected: bool) -> ClientError:
        """The error an answer other than success stands for: `rejected` when the client's rules say it
        refuses the request's content; else a 5xx, 408 or 429 is an outage, anything else a refusal
        to serve us. `reason` must be scrubbed and clipped already."""
        status = response.status_code
        message = f"{self.service} {what}: {status} {reason}"
        if rejected:
            return self.rejected(message, status=status, reason=reason)
        if is_retryable(status):
            return self.unavailable(message, status=status, retry_after=retry_after(response))
        return self.misconfigured(message, status=status, retry_after=retry_after(response))
