"""An async client for Kannel's `sendsms` HTTP interface (the simulator's SMS sink speaks it too).

Parameters go in a form-encoded POST body, never in the URL: a URL is logged (by httpx, proxies,
Kannel's access log) and the message text carries a security code. Errors come in two kinds, as
for the CMMS: `SmsUnavailable` (retry later) and `SmsRejected` (the gateway refused for good).
Neither carries the text or the gateway password.
"""

from types import TracebackType
from typing import Self

import httpx

_REASON_MAX = 200


class SmsError(Exception):
    """Any failure to hand a message to the gateway."""


class SmsUnavailable(SmsError):
    """Retryable: the gateway is down, slow, overloaded or unreachable."""


class SmsRejected(SmsError):
    """Permanent: bad credentials, a receiver or text the gateway refuses."""


class KannelClient:
    """One connection pool to one Kannel `sendsms` URL; close it with `aclose()` or `async with`."""

    def __init__(self, url: str, username: str, password: str, *, timeout: float = 5.0) -> None:
        self._url = url
        self._auth = {"username": username, "password": password}
        self._http = httpx.AsyncClient(timeout=timeout)

    async def send(self, to: str, text: str) -> None:
        """Hand one message to the gateway; returns once it is accepted for delivery."""
        try:
            response = await self._http.post(self._url, data=self._auth | {"to": to, "text": text})
        except httpx.TransportError as err:
            raise SmsUnavailable(f"SMS gateway unreachable: {type(err).__name__}") from None
        reason = response.text.strip()[:_REASON_MAX]
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise SmsUnavailable(f"SMS gateway answered {response.status_code}: {reason}")
        if response.status_code >= 400:
            raise SmsRejected(f"SMS gateway refused the message ({response.status_code}): {reason}")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
