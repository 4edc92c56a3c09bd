"""An async client for the CMMS provisioning API (`/api/v1/accounts`).

Errors are `clients.http`'s kinds, so a caller (a Temporal activity) knows whether to retry:
`CmmsRejected` is a business refusal (400, 409, 422: an IMEI the CMMS gives to another account, a
profile it does not know), final; `CmmsUnavailable` is everything else, retried: an outage (5xx, 408,
429, timeouts, connection errors) or, as its `CmmsMisconfigured` kind, a CMMS that answers but will
not serve us (401/403: a rotated token; a 404 on a write: a wrong URL), which an operator must fix.
None ever carries the account's password or the bearer token.
"""

from typing import Any
from urllib.parse import quote, urlencode

import httpx
from pydantic import ValidationError

from clients.http import ClientError, HttpClient, Misconfigured, Rejected, Unavailable, clipped, reason_of
from clients.pacing import Pacer
from contracts.cmms import CmmsAccount, CmmsPage, CmmsRecord

# The CMMS understood the request and refuses it for a reason of its own: the order cannot succeed.
_REFUSALS = frozenset({400, 409, 422})
_LIST_PATH = "/api/v1/accounts"


class CmmsError(ClientError):
    """Any CMMS failure; the message says what went wrong, in words."""


class CmmsUnavailable(CmmsError, Unavailable):
    """Retryable: the CMMS is down, overloaded, slow or unreachable."""


class CmmsMisconfigured(CmmsUnavailable, Misconfigured):
    """Retryable, but no passing outage: the CMMS answers and will not serve us (a rotated token, a
    wrong URL, an API it does not have). Nothing about the account is wrong, so nothing is given up;
    an operator must act."""


class CmmsRejected(CmmsError, Rejected):
    """Permanent: the CMMS refused the request for a business reason (unknown profile, IMEI taken)."""


class CmmsClient(HttpClient):
    """One connection pool to one CMMS; share it, and close it with `aclose()` or `async with`."""

    service = "CMMS"
    unavailable = CmmsUnavailable
    misconfigured = CmmsMisconfigured
    rejected = CmmsRejected

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        rate_limit_per_second: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
            secrets=(token,),
            transport=transport,
        )
        self._pacer = Pacer(rate_limit_per_second) if rate_limit_per_second else None

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
        return await self._request(method, path, f"{method} {path}", json=json, secrets=secrets)

    def _error(self, response: httpx.Response, method: str, *, secrets: tuple[str, ...] = ()) -> ClientError:
        reason = clipped(self._scrub(reason_of(response), *secrets))
        what = f"{method} {response.request.url.path}"
        return self._error_for(response, what, reason, rejected=response.status_code in _REFUSALS)


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
