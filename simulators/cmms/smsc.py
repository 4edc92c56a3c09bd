"""The receiving side of an SMSC that Kannel's generic HTTP SMSC driver (`smsc = http`,
`system-type = generic`) submits to, so a real bearerbox can deliver into the simulator's outbox.

Kannel fetches the `send-url` of its smsc group with its escape codes filled in (its user guide's
"HTTP-based relay and content gateways" and the sms-service escape codes); this endpoint expects

    send-url = "http://<sim>/smsc/v1/submit?to=%p&from=%P&text=%b&coding=%c&dlr-mask=%d&report-port=<port>"

and answers in words the group's `status-success-regex = "^Sent"`, `status-permfail-regex =
"^Rejected"`, `status-tempfail-regex = "^Retry"` and `generic-foreign-id-regex = "^Sent ([0-9a-f]+)"`
recognise. A delivery report goes back as Kannel's generic driver receives one: a GET on its
`port` (`report-port`, on the host the submission came from) with `dlr-mask`, `dlr-mid` (the
id answered) and `to`. What the SMSC does with the next messages is set by `PUT /_sim/smsc`.
"""

import asyncio
import logging
import secrets
from typing import Annotated
from urllib.parse import unquote_to_bytes

import httpx
from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from simulators.cmms.deps import SimDep
from simulators.cmms.sms import canonical_number
from simulators.cmms.smsc_state import Smsc, SmscBehaviour, SmscOutcome

router = APIRouter()
log = logging.getLogger("simulators.cmms.smsc")

# Kannel's report types the SMSC sends back: delivered to the phone, not delivered to the phone.
_DELIVERED, _UNDELIVERED = 1, 2
_UCS2 = 2


def decode_text(raw: bytes, coding: int) -> str:
    """Kannel's `%b` is the message as sent: UTF-16BE for UCS-2 (`coding` 2), else UTF-8."""
    return raw.decode("utf-16-be" if coding == _UCS2 else "utf-8", errors="replace")


async def send_report(host: str, port: int, message_id: str, to: str, report: int) -> None:
    """Tell Kannel's HTTP SMSC driver what became of a message, after the submission's answer."""
    await asyncio.sleep(0.1)
    params = {"dlr-mask": str(report), "dlr-mid": message_id, "to": to}
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            response = await http.get(f"http://{host}:{port}/", params=params)
        if response.status_code >= 400:
            log.warning("Kannel refused the delivery report: %s", response.status_code)
    except httpx.HTTPError as err:
        log.warning("delivery report not delivered to Kannel: %s", type(err).__name__)


@router.get("/smsc/v1/submit", response_class=PlainTextResponse)
async def submit(
    request: Request,
    sim: SimDep,
    background: BackgroundTasks,
    to: Annotated[str, Query()],
    coding: Annotated[int, Query()] = 0,
    dlr_mask: Annotated[int, Query(alias="dlr-mask")] = 0,
    report_port: Annotated[int | None, Query(alias="report-port")] = None,
) -> PlainTextResponse:
    """Take one message from Kannel, as an SMSC would."""
    smsc: Smsc = sim.smsc
    smsc.submissions += 1
    outcome = smsc.behaviour.outcome
    if outcome == SmscOutcome.unavailable:
        return PlainTextResponse("Retry later: SMSC busy", status_code=503)
    if outcome == SmscOutcome.rejected:
        return PlainTextResponse("Rejected: unknown subscriber", status_code=400)
    # The raw query value, so UCS-2 bytes are decoded as such and not as URL-decoded UTF-8.
    raw = next((v for k, v in _raw_query(request) if k == "text"), b"")
    message_id = secrets.token_hex(8)
    if outcome == SmscOutcome.delivered:
        await run_in_threadpool(sim.store.add_sms, canonical_number(to), decode_text(raw, coding))
    report = _DELIVERED if outcome == SmscOutcome.delivered else _UNDELIVERED
    # Kannel fills `%d` with -1 when no report was asked for.
    if report_port is not None and request.client is not None and dlr_mask > 0 and dlr_mask & report:
        background.add_task(send_report, request.client.host, report_port, message_id, to, report)
    return PlainTextResponse(f"Sent {message_id}")


def _raw_query(request: Request) -> list[tuple[str, bytes]]:
    pairs = []
    for part in request.scope.get("query_string", b"").split(b"&"):
        key, _, value = part.partition(b"=")
        pairs.append((unquote_to_bytes(key.replace(b"+", b" ")).decode(), unquote_to_bytes(value.replace(b"+", b" "))))
    return pairs


@router.put("/_sim/smsc")
async def set_behaviour(behaviour: SmscBehaviour, sim: SimDep) -> SmscBehaviour:
    """What the SMSC does with the messages submitted from now on."""
    sim.smsc.behaviour = behaviour
    return behaviour


class SmscStatus(SmscBehaviour):
    submissions: int  # messages Kannel submitted since the simulator started


@router.get("/_sim/smsc")
async def get_behaviour(sim: SimDep) -> SmscStatus:
    """What is set, and how many submissions the SMSC has seen."""
    return SmscStatus(outcome=sim.smsc.behaviour.outcome, submissions=sim.smsc.submissions)
