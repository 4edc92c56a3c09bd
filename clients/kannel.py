"""An async client for Kannel's `sendsms` HTTP interface (the simulator's SMS sink speaks it too).

The form used is the one Kannel's user guide documents for a POST ("SMS Push" in the guide's
"Running SMS gateway" chapter): the body is the message text, `Content-Type: text/plain;
charset=UTF-8`, and every parameter travels in an `X-Kannel-*` header (`X-Kannel-Username`,
`X-Kannel-Password`, `X-Kannel-To`, `X-Kannel-From`, `X-Kannel-Coding`, `X-Kannel-DLR-Mask`,
`X-Kannel-DLR-Url`). The other documented form, a GET with query parameters, would put the code
and the password into the URL, which httpx, proxies and Kannel's access log all record. A
form-encoded POST is not in Kannel's list: it answers `400 Invalid content-type`.

Kannel's answers (the guide's "SMS Push reply codes"): `202 0: Accepted for delivery` and
`202 3: Queued for later delivery` (the bearerbox stored it; no SMSC took it yet) are successes;
`503 Temporal failure, try again later.` and any unreachable smsbox (it exits while its bearerbox
is away) are `SmsUnavailable` (retry later); any other `4xx` (e.g. `403 Authorization failed for
sendsms`) is `SmsRejected` with Kannel's reason text. Neither error carries the text or the password.
"""

from enum import StrEnum
from types import TracebackType
from typing import Self

import httpx

from core.settings import SmsSettings

_REASON_MAX = 200

# Delivery report types to ask for (the guide's "SMS Delivery Reports" chapter): 1 delivered to the
# phone, 2 not delivered to the phone, 8 accepted by the SMSC, 16 rejected by the SMSC. (4, "buffered
# on the SMSC", adds nothing to "accepted" for someone waiting for a code.)
DLR_MASK = 1 | 2 | 8 | 16

# The GSM 03.38 default alphabet (and its extension table): text made only of these goes out as
# 7-bit SMS (`coding` 0, 160 characters); anything else asks Kannel for UCS-2 (`coding` 2).
_GSM_7BIT = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€\f"
)


class SmsError(Exception):
    """Any failure to hand a message to the gateway."""


class SmsUnavailable(SmsError):
    """Retryable: the gateway is down, slow, overloaded or unreachable. `maybe_sent`: the request may
    have reached it (a timeout, a connection lost mid-way), so the message may go out all the same; a
    refused connection or a 5xx/429 answer says it surely did not."""

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class SmsRejected(SmsError):
    """Permanent: bad credentials, a receiver or text the gateway refuses."""


class Submitted(StrEnum):
    """How Kannel took the message (both are `202`)."""

    accepted = "accepted"  # `0: Accepted for delivery`: handed to an SMSC driver
    queued = "queued"  # `3: Queued for later delivery`: stored by the bearerbox, no SMSC connected yet


def coding_for(text: str) -> int:
    """Kannel's `coding`: 0 (GSM 7-bit) when every character has a GSM 03.38 code, else 2 (UCS-2)."""
    return 0 if all(char in _GSM_7BIT for char in text) else 2


class KannelClient:
    """One connection pool to one Kannel `sendsms` URL; close it with `aclose()` or `async with`."""

    def __init__(self, url: str, username: str, password: str, *, sender: str = "", timeout: float = 5.0) -> None:
        self._url = url
        self._headers = {"X-Kannel-Username": username, "X-Kannel-Password": password}
        if sender:
            self._headers["X-Kannel-From"] = sender
        self._http = httpx.AsyncClient(timeout=timeout)

    @classmethod
    def from_settings(cls, settings: SmsSettings) -> Self:
        """The client of the gateway the settings name, with their credentials, sender and timeout."""
        return cls(
            settings.gateway_url,
            settings.username,
            settings.password.get_secret_value(),
            sender=settings.sender,
            timeout=settings.timeout_seconds,
        )

    async def send(self, to: str, text: str, *, dlr_url: str | None = None) -> Submitted:
        """Hand one message to the gateway; returns once Kannel has taken it.

        With `dlr_url`, Kannel fetches that URL (its `%d` replaced by the report type) for each
        delivery report of `DLR_MASK`.
        """
        headers = self._headers | {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-Kannel-To": to,
            "X-Kannel-Coding": str(coding_for(text)),
        }
        if dlr_url is not None:
            headers |= {"X-Kannel-DLR-Mask": str(DLR_MASK), "X-Kannel-DLR-Url": dlr_url}
        try:
            response = await self._http.post(self._url, content=text.encode("utf-8"), headers=headers)
        except httpx.TransportError as err:
            never_reached = isinstance(err, httpx.ConnectError | httpx.ConnectTimeout)
            raise SmsUnavailable(
                f"SMS gateway unreachable: {type(err).__name__}", maybe_sent=not never_reached
            ) from None
        reason = " ".join(response.text.split())[:_REASON_MAX]
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise SmsUnavailable(f"SMS gateway answered {response.status_code}: {reason}", maybe_sent=False)
        if response.status_code >= 400:
            raise SmsRejected(f"SMS gateway refused the message ({response.status_code}): {reason}")
        return Submitted.queued if reason.startswith("3:") else Submitted.accepted

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
