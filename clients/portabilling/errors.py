"""What a PortaBilling call can fail with, and which kind an answer is.

The kinds are `clients.http`'s, as for the CMMS, so a caller (a Temporal activity) knows whether to
retry: `PortaBillingRejected` is final (a `Client.*` fault: PortaBilling understood and refuses our
parameters; a 400 from the status API); `PortaBillingUnavailable` is retried (5xx without a known
fault, 408, 429, timeouts, connection errors); its `PortaBillingMisconfigured` kind is retried too,
but no outage passes by itself: PortaBilling answers and will not serve us (the login refused, our
session refused twice running, a path it does not serve), so an operator must act. None ever carries
the API password, a session token or an account's SIP password.
"""

import httpx
from pydantic import ValidationError

from clients import http
from clients.http import ClientError, Misconfigured, Rejected, Unavailable
from contracts.portabilling import Fault

# The faults PortaBilling answers (HTTP 500 with a `faultcode`) for a session it no longer honours: a
# token that expired, went unused for 24 h, was revoked, or was never valid. Every one means "log in
# again", as the public clients that run against live installations treat them:
# - https://github.com/portabilling/billing/blob/master/Porta/Billing/Billing.php (`isAuthError`:
#   `Server.Session.check_auth.auth_failed`, `Client.check_auth.envelope_missed`,
#   `Client.Session.check_auth.failed_to_process_jwt`, `Client.Session.check_auth.failed_to_process_access_token`);
# - https://github.com/WebTrit/webtrit_bss_adapter_python/blob/main/app/bss/adapters/portaswitch/api/admin.py
#   (`_send_request` refreshes on `Server.Session.check_auth.auth_failed` and
#   `Client.Session.check_auth.failed_to_process_access_token`, then repeats the call once).
# Any other `Server.Session.check_auth.*` is taken the same way.
SESSION_FAULTS = frozenset(
    {
        "Server.Session.check_auth.auth_failed",
        "Client.check_auth.envelope_missed",
        "Client.Session.check_auth.failed_to_process_jwt",
        "Client.Session.check_auth.failed_to_process_access_token",
    }
)
_SESSION_FAULT_PREFIX = "Server.Session.check_auth"


class PortaBillingError(ClientError):
    """Any PortaBilling failure; the message says what went wrong, in words."""


class PortaBillingUnavailable(PortaBillingError, Unavailable):
    """Retryable: PortaBilling is down, overloaded, slow or unreachable."""


class PortaBillingMisconfigured(PortaBillingUnavailable, Misconfigured):
    """Retryable, but no passing outage: PortaBilling answers and will not serve us (the API user's
    login refused, our session refused right after a fresh login, a path it does not serve)."""


class PortaBillingRejected(PortaBillingError, Rejected):
    """Permanent: PortaBilling refused the request's content (a `Client.*` fault, a 400)."""


def fault_of(response: httpx.Response) -> Fault | None:
    """The JSON API fault the answer carries, if any."""
    try:
        return Fault.model_validate_json(response.content)
    except ValidationError:
        return None


def is_session_refused(response: httpx.Response) -> bool:
    """Whether the answer refuses our session token, so that a new login and one more try may succeed:
    one of the JSON API's `SESSION_FAULTS` (or another `Server.Session.check_auth.*`), or the ESPF
    status API's 401 (https://github.com/portabilling/billing/blob/master/Porta/Billing/ESPF.php,
    `isAuthError`)."""
    if response.status_code == 401:
        return True
    fault = fault_of(response) if response.status_code == 500 else None
    return fault is not None and (
        fault.faultcode in SESSION_FAULTS or fault.faultcode.startswith(_SESSION_FAULT_PREFIX)
    )


def is_session_fault(fault: Fault | None) -> bool:
    """Whether the fault is about the session (a login or a token refused): ours to fix, not an outage."""
    return fault is not None and (fault.faultcode.startswith("Server.Session.") or fault.faultcode in SESSION_FAULTS)


def refuses_content(response: httpx.Response, fault: Fault | None) -> bool:
    """Whether the answer refuses what we asked (a `Client.*` fault, a 400): final."""
    if fault is not None and fault.faultcode in SESSION_FAULTS:
        return False  # about our session, not what we asked
    return (fault is not None and fault.faultcode.startswith("Client.")) or response.status_code == 400


def reason_of(response: httpx.Response, fault: Fault | None) -> str:
    """PortaBilling's reason: the fault's code and text, a `faultstring` alone, or the body (whole:
    scrub it, then clip it)."""
    if fault is None:
        return http.reason_of(response)
    return f"{fault.faultcode}: {fault.faultstring}" if fault.faultstring else fault.faultcode
