"""The ESPF status API ("Sending provisioning status for an account via ESPF API"): the service
reports each account's provisioning status, and the simulator records it for `GET /_sim/status`.

`POST /espf/v1/account/i/<i_account>/status` with the JSON API's bearer token and `{"status",
"group", "message"}` → 200 `{}`; 401 for a missing or refused token, 400 `{"faultstring"}` for an
invalid body (unknown status, no group, a message over 4000 characters), 404 for an unknown account.
"""

import json
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from contracts.portabilling import StatusReport
from simulators.portabilling.deps import SimDep, StatusRecord, bearer_token
from simulators.portabilling.stats import Count

router = APIRouter(prefix="/espf/v1")


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
    try:
        report = StatusReport.model_validate(json.loads(await request.body() or b"null"))
    except ValueError as err:  # a ValidationError is one
        problems = (
            "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors(include_input=False))
            if isinstance(err, ValidationError)
            else "the body is not JSON"
        )
        return JSONResponse({"faultstring": problems}, status_code=400)
    if i_account not in sim.store.accounts:
        return JSONResponse({"faultstring": f"account {i_account} not found"}, status_code=404)
    sim.stats.call("status")
    sim.statuses.append(StatusRecord(i_account=i_account, **report.model_dump(), at=datetime.now(UTC)))
    return JSONResponse({})
