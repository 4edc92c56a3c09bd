"""An SMS sink speaking Kannel's `sendsms` HTTP interface, so the same adapter can talk to a real Kannel.

Every accepted message is kept in the outbox, which tests read to find the codes sent.
"""

import hmac
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from simulator.deps import SimDep
from simulator.store import SmsMessage, recipient_key

router = APIRouter()

# Kannel's own answers, word for word, so an adapter tested here parses a real Kannel too.
_ACCEPTED = "0: Accepted for delivery"
_AUTH_FAILED = "Authorization failed for sendsms"
_NO_RECEIVER = "Empty receiver number not allowed, rejected"
_NO_TEXT = "Empty text not allowed, rejected"


async def _cgi_params(request: Request) -> dict[str, str]:
    """The sendsms parameters, from the query string and, for a POST, from a form body.

    A POST with another body type (as Kannel allows) carries the text in the body.
    """
    params = dict(request.query_params)
    if request.method == "POST":
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        elif body and "text" not in params:
            params["text"] = body.decode("utf-8", errors="replace")
    return params


def _authorised(params: dict[str, str], username: str, password: str) -> bool:
    # Kannel also accepts `user` and `pass`.
    given_user = params.get("username", params.get("user", ""))
    given_pass = params.get("password", params.get("pass", ""))
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    pass_ok = hmac.compare_digest(given_pass.encode(), password.encode())
    return user_ok and pass_ok


def _canonical(number: str) -> str:
    """E.164 with its `+` when the number is digits; anything else as sent."""
    key = recipient_key(number)
    return f"+{key}" if key.isdigit() else number.strip()


@router.api_route("/cgi-bin/sendsms", methods=["GET", "POST"], response_class=PlainTextResponse)
async def sendsms(request: Request, sim: SimDep) -> PlainTextResponse:
    """Accept a message for delivery: 202 `0: Accepted for delivery`, as Kannel answers."""
    params = await _cgi_params(request)
    settings = sim.settings
    if not _authorised(params, settings.sms_username, settings.sms_password.get_secret_value()):
        return PlainTextResponse(_AUTH_FAILED, status_code=status.HTTP_403_FORBIDDEN)
    # Kannel takes several receivers separated by spaces; an unencoded `+` also arrives as a space.
    receivers = params.get("to", "").split()
    if not receivers:
        return PlainTextResponse(_NO_RECEIVER, status_code=status.HTTP_400_BAD_REQUEST)
    text = params.get("text", "")
    if not text:
        return PlainTextResponse(_NO_TEXT, status_code=status.HTTP_400_BAD_REQUEST)
    for receiver in receivers:
        await run_in_threadpool(sim.store.add_sms, _canonical(receiver), text)
    return PlainTextResponse(_ACCEPTED, status_code=status.HTTP_202_ACCEPTED)


@router.get("/sms/v1/outbox")
def outbox(sim: SimDep, to: Annotated[str | None, Query()] = None) -> list[SmsMessage]:
    """The messages sent to `to` (the `+` optional), or all of them; newest last."""
    if to is not None and not recipient_key(to):
        to = None
    return sim.store.outbox(to)
