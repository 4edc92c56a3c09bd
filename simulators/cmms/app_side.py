"""The app side of OTT self-signup: the app's calls reach the CMMS, which relays them to billing.

`POST /app/v1/signup {phone_number}`, `POST /app/v1/resend {signup_id}` and
`POST /app/v1/verify {signup_id, code}` are what the branded app sends. As billing verifies
(SIGNUP_VERIFICATION=billing), the simulator forwards each to the billing API with the CMMS's API key,
answers billing's refusals as they are (status and problem document), and on a verified code hands
the app its credentials, as the CMMS would.

As the CMMS verifies (SIGNUP_VERIFICATION=cmms, the PortaBilling integration's way), the simulator
reports the number to billing (`POST /v1/signups`), generates the code, texts it through a Kannel
`sendsms` gateway (its own sink) and checks it; on the right code it issues the app's password and
confirms the number to billing with it (`POST /v1/signups/{id}/confirm`), which creates the account
and provisions it here. No code ever reaches billing.
"""

from typing import Any

import httpx
from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from clients.kannel import KannelClient, SmsError
from contracts.cmms import DeviceCredentials
from contracts.phone import BadPhoneNumber, normalise
from simulators.cmms.deps import SimDep, SimState
from simulators.cmms.settings import SimulatorSettings
from simulators.cmms.signup_codes import CODE_TTL_SECONDS, Check, SignupCodes

router = APIRouter(prefix="/app/v1")

_TIMEOUT = 30.0  # a verify waits for the account to be provisioned
_PROBLEM = "application/problem+json"


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


def _problem(status_code: int, detail: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else None
    body = {"title": detail, "status": status_code, "detail": detail} | extra
    return JSONResponse(body, status_code=status_code, media_type=_PROBLEM, headers=headers)


def _codes(request: Request) -> SignupCodes:
    """This CMMS's signup codes (SIGNUP_VERIFICATION=cmms), made on first use."""
    codes: SignupCodes | None = getattr(request.app.state, "signup_codes", None)
    if codes is None:
        codes = request.app.state.signup_codes = SignupCodes()
    return codes


def _cmms_verifies(sim: SimState) -> bool:
    return sim.settings.signup_verification == "cmms"


async def _text_code(sim: SimState, codes: SignupCodes, signup_id: str, e164: str) -> JSONResponse | None:
    """Generate and text a new code for the signup through the Kannel gateway; a problem if it failed."""
    settings = sim.settings
    code = codes.issue(signup_id, e164)
    text = f"Your security code is {code}. It expires in {CODE_TTL_SECONDS // 60} minutes."
    url = f"http://{settings.cmms_sim_host}:{settings.cmms_sim_port}/cgi-bin/sendsms"
    try:
        async with KannelClient(url, settings.sms_username, settings.sms_password.get_secret_value()) as sms:
            await sms.send(e164, text)
    except SmsError:
        return _problem(status.HTTP_502_BAD_GATEWAY, "the SMS gateway did not take the code")
    return None


@router.post("/signup", status_code=202)
async def signup(body: AppSignup, sim: SimDep, request: Request) -> Response:
    """The user entered a mobile number: the code goes out by SMS; the app gets the signup id."""
    try:
        answer = await _relay(sim.settings, "/v1/signups", body.model_dump())
    except httpx.TransportError:
        return _billing_unreachable()
    if not _cmms_verifies(sim) or answer.status_code != status.HTTP_202_ACCEPTED:
        return _as_is(answer)
    try:
        e164 = normalise(body.phone_number, frozenset())  # billing accepted it: valid and allowed
    except BadPhoneNumber:
        return _as_is(answer)
    codes = _codes(request)
    signup_id = answer.json()["signup_id"]
    if codes.wait_before_send(signup_id) is None:  # a repeated request inside the cooldown sends nothing
        failed = await _text_code(sim, codes, signup_id, e164)
        if failed is not None:
            return failed
    return _as_is(answer)


@router.post("/resend", status_code=202)
async def resend(body: AppResend, sim: SimDep, request: Request) -> Response:
    """The user asked for another code."""
    if not _cmms_verifies(sim):
        try:
            return _as_is(await _relay(sim.settings, f"/v1/signups/{body.signup_id}/resend", None))
        except httpx.TransportError:
            return _billing_unreachable()
    codes = _codes(request)
    e164 = codes.phone_number(body.signup_id)
    if e164 is None:
        return _problem(status.HTTP_404_NOT_FOUND, "no such signup")
    wait = codes.wait_before_send(body.signup_id)
    if wait is not None:
        detail = "no more codes may be sent" if wait < 0 else "a code was sent moments ago"
        return _problem(status.HTTP_429_TOO_MANY_REQUESTS, detail, **({"retry_after": wait} if wait > 0 else {}))
    try:  # billing keeps the signup open for the new code's lifetime
        answer = await _relay(sim.settings, "/v1/signups", {"phone_number": e164})
    except httpx.TransportError:
        return _billing_unreachable()
    if answer.status_code != status.HTTP_202_ACCEPTED:
        return _as_is(answer)
    return await _text_code(sim, codes, body.signup_id, e164) or _as_is(answer)


@router.post("/verify", response_model=DeviceCredentials)
async def verify(body: AppVerify, sim: SimDep, request: Request) -> Response:
    """The user typed the code: on the right one the app receives its credentials, nothing more to type."""
    password: str | None = None
    try:
        if _cmms_verifies(sim):
            codes = _codes(request)
            outcome, left = codes.check(body.signup_id, body.code)
            if outcome == Check.wrong:
                return _problem(status.HTTP_422_UNPROCESSABLE_CONTENT, "the code is wrong", attempts_left=left)
            if outcome != Check.right:
                return _problem(status.HTTP_410_GONE if outcome == Check.expired else 429, f"the code is {outcome}")
            password = codes.password(body.signup_id)
            answer = await _relay(sim.settings, f"/v1/signups/{body.signup_id}/confirm", {"password": password})
        else:
            answer = await _relay(sim.settings, f"/v1/signups/{body.signup_id}/verify", {"code": body.code})
    except httpx.TransportError:
        return _billing_unreachable()
    if answer.status_code != status.HTTP_200_OK:
        return _as_is(answer)
    account_id = answer.json()["account_id"]
    stored = await run_in_threadpool(sim.store.get_account, account_id)
    if stored is None:
        return JSONResponse({"detail": "the CMMS does not hold the account"}, status_code=status.HTTP_502_BAD_GATEWAY)
    app_config = DeviceCredentials(
        account_id=stored.account_id,
        # Billing verified: the credentials it answered; this CMMS verified: the password it issued.
        password=password or answer.json()["credentials"]["password"],
        domain=stored.domain,
        profile=stored.profile,
        messaging_enabled=stored.messaging_enabled,
        version=stored.version,
    )
    return JSONResponse(app_config.model_dump())
