"""An SMS sink that answers as Kannel's smsbox `sendsms` does, so the fast tests cannot drift from it.

It takes what Kannel 1.4.5 takes and refuses what it refuses, with Kannel's status codes and words
(its user guide's "Using the HTTP interface to send SMS messages"; its `gw/smsbox.c`): a GET (or a
POST without a body) with query parameters, or a POST whose body is the text, `Content-Type:
text/plain` or `application/octet-stream`, with the parameters in `X-Kannel-*` headers. Any other
POST body type, a form-encoded one included, is `400 Invalid content-type`. (Kannel's XML POST is
not played: this sink answers it as an unknown type.)

Playing Kannel and a perfect SMSC at once, it keeps every message in the outbox and, when a
delivery report was asked for, fetches the `dlr-url` as Kannel would: `8` (accepted by the SMSC),
then `1` (delivered), each only if the mask asks for it.
"""

import asyncio
import hmac
import logging
from collections.abc import Mapping
from typing import Annotated

import httpx
from fastapi import APIRouter, BackgroundTasks, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from simulators.cmms.deps import SimDep
from simulators.cmms.store import SmsMessage, recipient_key

router = APIRouter()
log = logging.getLogger("simulators.cmms.sms")

# Kannel's own answers, word for word, so an adapter tested here parses a real Kannel too.
_ACCEPTED = "0: Accepted for delivery"
_AUTH_FAILED = "Authorization failed for sendsms"
_BAD_CONTENT_TYPE = "Invalid content-type"
_MISSING_RECEIVER = "Missing receiver number, rejected"
_NO_RECEIVER = "Empty receiver number not allowed, rejected"
_BAD_DLR_MASK = "DLR-Mask field misformed, rejected"
_BAD_CODING = "Coding field misformed, rejected"

_BODY_TYPES = ("text/plain", "application/octet-stream")
# Kannel's report types: 8 accepted by the SMSC, 1 delivered to the phone (in the order they come).
_REPORTS = (8, 1)
# The `X-Kannel-*` headers and the query parameters they stand for.
_HEADERS = {
    "x-kannel-username": "username",
    "x-kannel-password": "password",
    "x-kannel-from": "from",
    "x-kannel-to": "to",
    "x-kannel-coding": "coding",
    "x-kannel-dlr-mask": "dlr-mask",
    "x-kannel-dlr-url": "dlr-url",
}


def _from_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {param: headers[name] for name, param in _HEADERS.items() if name in headers}


def _authorised(params: dict[str, str], username: str, password: str) -> bool:
    # Kannel also accepts `user` and `pass`.
    given_user = params.get("username", params.get("user", ""))
    given_pass = params.get("password", params.get("pass", ""))
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    pass_ok = hmac.compare_digest(given_pass.encode(), password.encode())
    return user_ok and pass_ok


def canonical_number(number: str) -> str:
    """E.164 with its `+` when the number is digits; anything else as sent."""
    key = recipient_key(number)
    return f"+{key}" if key.isdigit() else number.strip()


def _number(value: str | None) -> int | str | None:
    """A numeric Kannel field: None when absent, the int, or the raw text when misformed."""
    if value is None or value == "":
        return None
    return int(value) if value.strip().isdigit() else value


def _refusal(params: dict[str, str], username: str, password: str, *, post: bool) -> PlainTextResponse | None:
    """Kannel's answer to a request it refuses, checked in Kannel's order; None when it takes it."""
    if not _authorised(params, username, password):
        return PlainTextResponse(_AUTH_FAILED, status_code=status.HTTP_403_FORBIDDEN)
    if "to" not in params:
        missing = "Missing receiver(s) number(s), rejected" if post else _MISSING_RECEIVER
        return PlainTextResponse(missing, status_code=status.HTTP_400_BAD_REQUEST)
    if not params["to"].split():
        return PlainTextResponse(_NO_RECEIVER, status_code=status.HTTP_400_BAD_REQUEST)
    if isinstance(_number(params.get("dlr-mask")), str):
        return PlainTextResponse(_BAD_DLR_MASK, status_code=status.HTTP_400_BAD_REQUEST)
    coding = _number(params.get("coding"))
    if isinstance(coding, str) or (coding is not None and coding > 2):
        return PlainTextResponse(_BAD_CODING, status_code=status.HTTP_400_BAD_REQUEST)
    return None


async def fetch_reports(dlr_url: str, mask: int, reports: tuple[int, ...]) -> None:
    """Fetch the `dlr-url` (its `%d` filled in) for each report type the mask asks for, as Kannel does."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        for report in reports:
            if mask & report:
                try:
                    await http.get(dlr_url.replace("%d", str(report)))
                except httpx.HTTPError as err:
                    log.warning("delivery report not delivered: %s", type(err).__name__)
                await asyncio.sleep(0.05)


@router.api_route("/cgi-bin/sendsms", methods=["GET", "POST"], response_class=PlainTextResponse)
async def sendsms(request: Request, sim: SimDep, background: BackgroundTasks) -> PlainTextResponse:
    """Accept a message for delivery: 202 `0: Accepted for delivery`, as Kannel answers."""
    body = await request.body() if request.method == "POST" else b""
    if body:
        # Kannel reads a POST body's parameters from its headers only, never from the query string.
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in _BODY_TYPES:
            return PlainTextResponse(_BAD_CONTENT_TYPE, status_code=status.HTTP_400_BAD_REQUEST)
        params = _from_headers(request.headers) | {"text": body.decode("utf-8", errors="replace")}
    else:
        params = dict(request.query_params)
    settings = sim.settings
    refusal = _refusal(params, settings.sms_username, settings.sms_password.get_secret_value(), post=bool(body))
    if refusal is not None:
        return refusal
    # Kannel takes several receivers separated by spaces; an unencoded `+` also arrives as a space.
    text = params.get("text", "")
    for receiver in params["to"].split():
        await run_in_threadpool(sim.store.add_sms, canonical_number(receiver), text)
    mask, dlr_url = _number(params.get("dlr-mask")), params.get("dlr-url")
    if isinstance(mask, int) and dlr_url:
        background.add_task(fetch_reports, dlr_url, mask, _REPORTS)
    return PlainTextResponse(_ACCEPTED, status_code=status.HTTP_202_ACCEPTED)


@router.get("/sms/v1/outbox")
def outbox(sim: SimDep, to: Annotated[str | None, Query()] = None) -> list[SmsMessage]:
    """The messages sent to `to` (the `+` optional), or all of them; newest last."""
    if to is not None and not recipient_key(to):
        to = None
    return sim.store.outbox(to)
