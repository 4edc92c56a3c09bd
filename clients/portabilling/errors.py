"""What a PortaBilling call can fail with, and which kind an answer is.

Three kinds, as for the CMMS (`clients.cmms`), so a caller (a Temporal activity) knows whether to retry:
`PortaBillingRejected` is final (a `Client.*` fault: PortaBilling understood and refuses our parameters;
a 400 from the status API); `PortaBillingUnavailable` is retried (5xx without a known fault, 408, 429,
timeouts, connection errors); its `PortaBillingMisconfigured` kind is retried too, but no outage passes
by itself: PortaBilling answers and will not serve us (the login refused, our session refused twice
running, a path it does not serve), so an operator must act. None ever carries the API password, a
session token or an account's SIP password.
"""

from collections import deque

import httpx
from pydantic import ValidationError

from clients.http import RETRYABLE_4XX, retry_after
from contracts.portabilling import Fault

_REASON_MAX = 300
# PortaBilling's fault for a missing, unknown or expired session token ("Retrieving data from
# PortaBilling": the JSON API answers every fault with HTTP 500 and a `faultcode`).
_SESSION_FAULT_PREFIX = "Server.Session.check_auth"


class PortaBillingError(Exception):
    """Any PortaBilling failure; the message says what went wrong, in words."""


class PortaBillingUnavailable(PortaBillingError):
    """Retryable: PortaBilling is down, overloaded, slow or unreachable."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PortaBillingMisconfigured(PortaBillingUnavailable):
    """Retryable, but no passing outage: PortaBilling answers and will not serve us (the API user's
    login refused, our session refused right after a fresh login, a path it does not serve)."""


class PortaBillingRejected(PortaBillingError):
    """Permanent: PortaBilling refused the request's content (a `Client.*` fault, a 400)."""

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def fault_of(response: httpx.Response) -> Fault | None:
    """The JSON API fault the answer carries, if any."""
    try:
        return Fault.model_validate_json(response.content)
    except ValidationError:
        return None


def is_session_refused(response: httpx.Response) -> bool:
    """Whether the answer refuses our session token: the JSON API's `Server.Session.check_auth.*`
    fault, or the ESPF status API's 401."""
    if response.status_code == 401:
        return True
    fault = fault_of(response) if response.status_code == 500 else None
    return fault is not None and fault.faultcode.startswith(_SESSION_FAULT_PREFIX)


def error_for(response: httpx.Response, what: str, scrub: "Scrubber") -> PortaBillingError:
    """The error an answer other than success stands for; `what` names the call in the message."""
    status = response.status_code
    fault = fault_of(response)
    reason = scrub(reason_of(response, fault))
    message = f"PortaBilling {what}: {status} {reason}"
    if (fault is not None and fault.faultcode.startswith("Client.")) or status == 400:
        return PortaBillingRejected(message, status=status, reason=reason)
    if fault is not None and fault.faultcode.startswith("Server.Session."):
        return PortaBillingMisconfigured(message, status=status)
    if status >= 500 or status in RETRYABLE_4XX:
        return PortaBillingUnavailable(message, status=status, retry_after=retry_after(response))
    # 401, 403, 404 (a path PortaBilling does not serve: a wrong PORTABILLING_URL), anything else.
    return PortaBillingMisconfigured(message, status=status, retry_after=retry_after(response))


def reason_of(response: httpx.Response, fault: Fault | None) -> str:
    """PortaBilling's reason: the fault's code and text, a `faultstring` alone, or the body; never long."""
    if fault is not None:
        reason = f"{fault.faultcode}: {fault.faultstring}" if fault.faultstring else fault.faultcode
    else:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        text = payload.get("faultstring") if isinstance(payload, dict) else None
        reason = str(text) if text else (response.text.strip() or response.reason_phrase)
    return reason if len(reason) <= _REASON_MAX else reason[: _REASON_MAX - 1] + "…"


class Scrubber:
    """Removes the secrets a client holds (its password, its recent session tokens) from outside text."""

    def __init__(self, password: str) -> None:
        self._password = password
        self._tokens: deque[str] = deque(maxlen=3)

    def add(self, token: str) -> None:
        """Scrub this API token too (the few most recent are kept)."""
        self._tokens.append(token)

    def __call__(self, text: str) -> str:
        for secret in (self._password, *self._tokens):
            if secret:
                text = text.replace(secret, "***")
        return text
