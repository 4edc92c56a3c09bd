"""The ESPF status API: the service reports each account's provisioning status, and the simulator
records it for `GET /_sim/status`.

Built from PortaBilling's public page "Sending provisioning status for an account via ESPF API"
(https://docs.portaone.com/docs/mr100-sending-provisioning-status-for-an-account-via-espf-api, and its
MR96 version): `POST /espf/v1/account/i/<i_account>/status`, authorized as the API user, with the
parameters `status` (OK, IN_PROGRESS, RETRY, FAILED), `group` (a registered service group; VoIP, HSS,
PCRF, IPTV, WiMAX, Netaccess, NumberPortability and LawfulInterception are predefined) and `message`
(at most 4000 characters). That page says the body must be `application/x-www-form-urlencoded`;
later releases take JSON. `PORTABILLING_SIM_STATUS_ENCODING` chooses which one this simulator takes
(`json`, MR101 and later; `form`, MR100): the other is answered 415, as a web server answers a body
type it does not take. The page shows no answer bodies: success is 200 `{}` here, a refused token 401,
an invalid body or a group not registered 400 `{"faultstring"}`, an unknown account 404.
"""

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from contracts.portabilling import StatusReport
from simulators.portabilling.deps import SimDep, StatusRecord, bearer_token
from simulators.portabilling.stats import Count

router = APIRouter(prefix="/espf/v1")

_CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}
# The service groups PortaBilling predefines; any other must be registered first (none is, here).
GROUPS = frozenset({"VoIP", "HSS", "PCRF", "IPTV", "WiMAX", "Netaccess", "NumberPortability", "LawfulInterception"})


@router.post("/account/i/{i_account}/status")
async def post_status(i_account: int, request: Request, sim: SimDep) -> JSONResponse:
    """Record one provisioning status of an account."""
    if sim.faults.status_api == "down":
        return JSONResponse({"faultstring": "unavailable (simulated outage)"}, status_code=503)
    if not sim.sessions.valid(bearer_token(request)):
        sim.stats.add(Count.refused_token)
        return JSONResponse(
            {"faultstring": "authentication required"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
    encoding = sim.settings.portabilling_sim_status_encoding
    wanted = _CONTENT_TYPES[encoding]
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != wanted:
        sim.stats.call("status 415")
        return JSONResponse({"faultstring": f"unsupported media type: send {wanted}"}, status_code=415)
    try:
        report = StatusReport.model_validate(_body(await request.body(), form=encoding == "form"))
    except ValueError as err:  # a ValidationError is one
        problems = (
            "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors(include_input=False))
            if isinstance(err, ValidationError)
            else "the body is not JSON"
        )
        return JSONResponse({"faultstring": problems}, status_code=400)
    if report.group not in GROUPS or sim.faults.status_api == "refusing":
        return JSONResponse({"faultstring": f"group {report.group!r} is not registered"}, status_code=400)
    if i_account not in sim.store.accounts:
        return JSONResponse({"faultstring": f"account {i_account} not found"}, status_code=404)
    sim.stats.call("status")
    sim.statuses.append(StatusRecord(i_account=i_account, **report.model_dump(), at=datetime.now(UTC)))
    return JSONResponse({})


def _body(raw: bytes, *, form: bool) -> Any:
    if form:
        return dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
    return json.loads(raw or b"null")
