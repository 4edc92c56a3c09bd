"""The app side of OTT self-signup: the app's calls reach the CMMS, which relays them to billing.

`POST /app/v1/signup {phone_number}`, `POST /app/v1/resend {signup_id}` and
`POST /app/v1/verify {signup_id, code}` are what the branded app sends. The simulator forwards each
to the billing API with the CMMS's API key, answers billing's refusals as they are (status and
problem document), and on a verified code hands the app its credentials, as the CMMS would.
"""

from typing import Any

import httpx
from fastapi import APIRouter, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from contracts.cmms import DeviceCredentials
from simulator.deps import SimDep
from simulator.settings import SimulatorSettings

router = APIRouter(prefix="/app/v1")

_TIMEOUT = 30.0  # a verify waits for the account to be provisioned


class AppSignup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone_number: str = Field(min_length=1, max_length=32)


class AppResend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signup_id: str = Field(min_length=1, max_length=64)


class AppVerify(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signup_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=32)


async def _relay(settings: SimulatorSettings, path: str, body: dict[str, Any] | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {settings.billing_api_key.get_secret_value()}"}
    async with httpx.AsyncClient(base_url=settings.billing_api_url, timeout=_TIMEOUT) as client:
        return await client.post(path, json=body, headers=headers)


def _as_is(answer: httpx.Response) -> Response:
    """Billing's answer, passed to the app unchanged (its problem document says what went wrong)."""
    headers = {k: v for k, v in answer.headers.items() if k.lower() == "retry-after"}
    media_type = answer.headers.get("content-type", "application/json")
    return Response(answer.content, status_code=answer.status_code, headers=headers, media_type=media_type)


def _billing_unreachable() -> JSONResponse:
    return JSONResponse({"detail": "billing is unreachable"}, status_code=status.HTTP_502_BAD_GATEWAY)


@router.post("/signup", status_code=202)
async def signup(body: AppSignup, sim: SimDep) -> Response:
    """The user entered a mobile number: billing sends the code by SMS; the app gets the signup id."""
    try:
        return _as_is(await _relay(sim.settings, "/v1/signups", body.model_dump()))
    except httpx.TransportError:
        return _billing_unreachable()


@router.post("/resend", status_code=202)
async def resend(body: AppResend, sim: SimDep) -> Response:
    """The user asked for another code."""
    try:
        return _as_is(await _relay(sim.settings, f"/v1/signups/{body.signup_id}/resend", None))
    except httpx.TransportError:
        return _billing_unreachable()


@router.post("/verify", response_model=DeviceCredentials)
async def verify(body: AppVerify, sim: SimDep) -> Response:
    """The user typed the code: on the right one the app receives its credentials, nothing more to type."""
    try:
        answer = await _relay(sim.settings, f"/v1/signups/{body.signup_id}/verify", {"code": body.code})
    except httpx.TransportError:
        return _billing_unreachable()
    if answer.status_code != status.HTTP_200_OK:
        return _as_is(answer)
    credentials = answer.json()["credentials"]
    stored = await run_in_threadpool(sim.store.get_account, credentials["account_id"])
    if stored is None:
        return JSONResponse({"detail": "the CMMS does not hold the account"}, status_code=status.HTTP_502_BAD_GATEWAY)
    app_config = DeviceCredentials(
        account_id=stored.account_id,
        password=credentials["password"],
        domain=credentials["domain"],
        profile=stored.profile,
        messaging_enabled=stored.messaging_enabled,
        version=stored.version,
    )
    return JSONResponse(app_config.model_dump())
