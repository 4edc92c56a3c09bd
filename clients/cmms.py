"""An async client for the CMMS provisioning API (`/api/v1/accounts`).

Errors come in two kinds, so a caller (a Temporal activity) knows whether to retry:
`CmmsRejected` is a business refusal (400, 409, 422: an IMEI the CMMS gives to another account, a
profile it does not know), final; `CmmsUnavailable` is everything else, retried: an outage (5xx, 408,
429, timeouts, connection errors) or, as its `CmmsMisconfigured` kind, a CMMS that answers but will
not serve us (401/403: a rotated token; a 404 on a write: a wrong URL), which an operator must fix.
None ever carries the account's password or the bearer token.
"""

from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlencode

import httpx
from pydantic import ValidationError

from clients.http import RETRYABLE_4XX, retry_after
from clients.pacing import Pacer
from contracts.cmms import CmmsAccount, CmmsPage, CmmsRecord
from core.settings import CmmsSettings

# Sized for about 100 provisioning calls in flight from one worker.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
_REASON_MAX = 300
# The CMMS understood the request and refuses it for a reason of its own: the order cannot succeed.
_REFUSALS = frozenset({400, 409, 422})
_LIST_PATH = "/api/v1/accounts"


class CmmsError(Exception):
    """Any CMMS failure; the message says what went wrong, in words."""


class CmmsUnavailable(CmmsError):
    """Retryable: the CMMS is down, overloaded, slow or unreachable."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class CmmsMisconfigured(CmmsUnavailable):
    """Retryable, but no passing outage: the CMMS answers and will not serve us (a rotated token, a
    wrong URL, an API it does not have). Nothing about the account is wrong, so nothing is given up;
    an operator must act."""


class CmmsRejected(CmmsError):
    """Permanent: the CMMS refused the request for a business reason (unknown profile, IMEI taken)."""

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class CmmsClient:
    """One connection pool to one CMMS; share it, and close it with `aclose()` or `async with`."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        rate_limit_per_second: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token = token
        self._pacer = Pacer(rate_limit_per_second) if rate_limit_per_second else None
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            limits=_LIMITS,
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: CmmsSettings) -> Self:
        """The client of the CMMS the settings name, at their timeout and rate limit."""
        return cls(
            settings.url,
            settings.token.get_secret_value(),
            timeout=settings.timeout_seconds,
            rate_limit_per_second=settings.rate_limit_per_second,
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

    async def upsert_account(self, account_id: str, account: CmmsAccount) -> CmmsRecord:
        """Create or update the account (idempotent: a repeat leaves the version as it is)."""
        secret = account.password.get_secret_value()
        body = account.model_dump(mode="json") | {"password": secret}
        response = await self._send("PUT", _path(account_id), json=body, secrets=(secret,))
        if response.status_code in (200, 201):
            return _record(response, "PUT")
        raise self._error(response, "PUT", secrets=(secret,))

    async def get_account(self, account_id: str) -> CmmsRecord | None:
        """The CMMS's record of the account, or None when it has none."""
        response = await self._send("GET", _path(account_id))
        if response.status_code == 200:
            return _record(response, "GET")
        if response.status_code == 404:
            return None
        raise self._error(response, "GET")

    async def delete_account(self, account_id: str) -> bool:
        """Remove the account; False when it was already absent (a repeat is not an error)."""
        response = await self._send("DELETE", _path(account_id))
        if response.status_code in (200, 204):
            return True
        if response.status_code == 404:
            return False
        raise self._error(response, "DELETE")

    async def list_accounts(self, after: str | None, limit: int) -> CmmsPage:
        """One page of the CMMS's records in account id order: those after `after` (from the start when
        None), at most `limit`; the page's `next` is the `after` of the following one."""
        query = urlencode({"limit": limit} | ({"after": after} if after is not None else {}))
        response = await self._send("GET", f"{_LIST_PATH}?{query}")
        if response.status_code == 200:
            try:
                return CmmsPage.model_validate_json(response.content)
            except ValidationError:
                raise CmmsUnavailable(f"CMMS GET {_LIST_PATH}: 200 with an unreadable page", status=200) from None
        raise self._error(response, "GET")

    async def _send(self, method: str, path: str, *, json: Any = None, secrets: tuple[str, ...] = ()) -> httpx.Response:
        if self._pacer is not None:
            await self._pacer.wait()
        try:
            return await self._http.request(method, path, json=json)
        except httpx.TimeoutException as exc:
            raise CmmsUnavailable(f"CMMS {method} {path}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            # `from None`: the transport error's text is not ours to vouch for; ours is scrubbed.
            reason = self._scrub(str(exc) or type(exc).__name__, secrets)
            raise CmmsUnavailable(f"CMMS {method} {path}: unreachable ({reason})") from None

    def _error(self, response: httpx.Response, method: str, *, secrets: tuple[str, ...] = ()) -> CmmsError:
        status = response.status_code
        reason = self._scrub(_reason(response), secrets)
        message = f"CMMS {method} {response.request.url.path}: {status} {reason}"
        if status in _REFUSALS:
            return CmmsRejected(message, status=status, reason=reason)
        if status >= 500 or status in RETRYABLE_4XX:
            return CmmsUnavailable(message, status=status, retry_after=retry_after(response))
        return CmmsMisconfigured(message, status=status, retry_after=retry_after(response))

    def _scrub(self, text: str, secrets: tuple[str, ...]) -> str:
        """Remove the token and the password from a text that came from outside."""
        for secret in (self._token, *secrets):
            if secret:
                text = text.replace(secret, "***")
        return text


def _path(account_id: str) -> str:
    # Quoted whole, so an odd account ID can never reach another path.
    return f"/api/v1/accounts/{quote(account_id, safe='')}"


def _record(response: httpx.Response, method: str) -> CmmsRecord:
    try:
        return CmmsRecord.model_validate_json(response.content)
    except ValidationError:
        # A garbled success (a proxy's page, a half answer): retrying an idempotent call is safe.
        raise CmmsUnavailable(
            f"CMMS {method} {response.request.url.path}: {response.status_code} with an unreadable record",
            status=response.status_code,
        ) from None


def _reason(response: httpx.Response) -> str:
    """The CMMS's reason: JSON `detail` when there is one, else the body text; never too long."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, list):
        # FastAPI-style validation errors: where and what, never the input (it may hold the password).
        reason = "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg', '')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    elif detail is not None:
        reason = str(detail)
    else:
        reason = response.text.strip() or response.reason_phrase
    return reason if len(reason) <= _REASON_MAX else reason[: _REASON_MAX - 1] + "…"
