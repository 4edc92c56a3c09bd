"""PortaBilling's ESPF events (`BILLING_SOURCE=portabilling`): `POST /v1/portabilling/events`.

PortaBilling authenticates with HTTP Basic (its EventSender handler's default, "Receiving provisioning
events"), with ESPF_USERNAME and ESPF_PASSWORD, not an API key. It retries every answer but a 200, so:
an event stored (or already stored: a repeat), and one this service has nothing to do with, get a
200; a caller's mistake gets its 4xx; only an event that could not be stored (the database away: 503)
is left for PortaBilling to send again.
"""

import base64
import binascii
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPBasic
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from api.deps import OutboxDep, StateDep
from api.problems import Problem
from contracts.portabilling import EspfEvent
from services.portabilling_events import Receipt, receive

router = APIRouter(prefix="/v1/portabilling", tags=["portabilling"])


class EventReceipt(BaseModel):
    """`accepted`: stored, its account (or customer's accounts) will be pushed; `repeat`: stored before,
    nothing more done; `ignored`: stored, it names no account or customer."""

    status: Receipt


class _EspfBasic(HTTPBasic):
    """States in the OpenAPI document that the route takes HTTP Basic, and checks nothing itself:
    `espf_credentials` does, once it knows the route is served here at all."""

    async def __call__(self, request: HTTPConnection) -> None:
        return None


_espf_basic = _EspfBasic(scheme_name="espfBasic", description="ESPF_USERNAME and ESPF_PASSWORD", auto_error=False)


async def espf_credentials(state: StateDep, request: Request, _: Annotated[None, Depends(_espf_basic)]) -> None:
    """HTTP Basic with ESPF_USERNAME and ESPF_PASSWORD, compared in constant time; served only beside
    PortaBilling."""
    settings = state.settings
    if settings.billing_source != "portabilling":
        raise Problem(404, "PortaBilling events are served only with BILLING_SOURCE=portabilling")
    expected = (
        f"{settings.portabilling.espf_username}:{settings.portabilling.espf_password.get_secret_value()}".encode()
    )
    if not hmac.compare_digest(_basic(request.headers.get("Authorization")), expected):
        problem = Problem(401, "PortaBilling's ESPF credentials (HTTP Basic) are required")
        problem.headers["WWW-Authenticate"] = 'Basic realm="espf", charset="UTF-8"'
        raise problem


def _basic(authorization: str | None) -> bytes:
    """The `user:password` of a Basic header; empty when there is none or it does not decode."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return b""
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


@router.post(
    "/events",
    dependencies=[Depends(espf_credentials)],
    responses={
        401: {"description": "PortaBilling's ESPF credentials (HTTP Basic) are required"},
        404: {"description": "Served only beside PortaBilling (BILLING_SOURCE=portabilling)"},
    },
    operation_id="receive_portabilling_event",
)
async def receive_event(body: EspfEvent, outbox: OutboxDep) -> EventReceipt:
    """Store one ESPF event (once, by `i_event`) and have what it names pushed to the CMMS."""
    return EventReceipt(status=await receive(outbox, body))
