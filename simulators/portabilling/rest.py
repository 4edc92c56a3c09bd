"""The JSON API subset provisioning reads ("Retrieving data from PortaBilling").

Every call is `POST /rest/<Service>/<method>` with `{"params": {...}}`; all but `Session/login` carry
`Authorization: Bearer <access_token>`. Faults are answered as PortaBilling does, with HTTP 500 and
`{"faultcode", "faultstring"}`: `Server.Session.auth_failed` for a refused login,
`Server.Session.check_auth.auth_failed` for a missing, unknown or expired token, `Client.validation`
for malformed parameters. An unknown entity is no fault: its answer is `{}` (or an empty list).
"""

import asyncio
import hmac
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from simulators.portabilling.deps import SimDep, SimState, bearer_token
from simulators.portabilling.stats import Count
from simulators.portabilling.store import Account

router = APIRouter(prefix="/rest")

LOGIN = "Session/login"


class LoginParams(BaseModel):
    login: str
    password: str


class AccountParams(BaseModel):
    i_account: int


class CustomerParams(BaseModel):
    i_customer: int


class ProductParams(BaseModel):
    i_product: int


class AccountListParams(BaseModel):
    i_customer: int
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)


def fault(code: str, text: str, status: int = 500) -> JSONResponse:
    return JSONResponse({"faultcode": code, "faultstring": text}, status_code=status)


@router.post("/{service}/{method}")
async def call(service: str, method: str, request: Request, sim: SimDep) -> JSONResponse:
    """One JSON API call."""
    name = f"{service}/{method}"
    answer = _METHODS.get(name)
    if answer is None and name != LOGIN:
        return JSONResponse({"detail": f"no such method {name}"}, status_code=404)
    if sim.faults.api == "down":
        return JSONResponse(
            {"detail": "PortaBilling unavailable (simulated outage)"}, status_code=503, headers={"Retry-After": "1"}
        )
    if sim.faults.api == "slow":
        await asyncio.sleep(sim.faults.slow_seconds)
    try:
        params = _params(await request.body())
        if answer is None:
            return _login(sim, LoginParams.model_validate(params))
        if not sim.sessions.valid(bearer_token(request)):
            sim.stats.add(Count.refused_token)
            return fault("Server.Session.check_auth.auth_failed", "Session expired or invalid, please log in")
        sim.stats.call(name)
        return JSONResponse(answer(sim, params))
    except ValidationError as err:
        # Where and what, never the input (a login's holds the password).
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors(include_input=False))
        return fault("Client.validation", f"invalid params: {problems}")
    except ValueError as err:
        return fault("Client.validation", str(err))


def _params(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        raise ValueError("the body is not JSON") from None
    params = payload.get("params") if isinstance(payload, dict) else None
    if not isinstance(params, dict):
        raise ValueError('the body has no "params" object')
    return params


def _login(sim: SimState, params: LoginParams) -> JSONResponse:
    settings = sim.settings
    # Constant-time, so a password cannot be guessed byte by byte from response times.
    right = hmac.compare_digest(params.login.encode(), settings.portabilling_login.encode()) & hmac.compare_digest(
        params.password.encode(), settings.portabilling_password.get_secret_value().encode()
    )
    if not right:
        sim.stats.add(Count.refused_login)
        return fault("Server.Session.auth_failed", "Invalid login or password")
    sim.stats.add(Count.login)
    issued = sim.sessions.issue()
    return JSONResponse(
        {
            "access_token": issued.access_token,
            "session_id": issued.session_id,
            "refresh_token": issued.refresh_token,
            "expires_at": issued.expires_at.isoformat().replace("+00:00", "Z"),
        }
    )


def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


def _account_info(sim: SimState, params: dict[str, Any]) -> dict[str, Any]:
    account = sim.store.accounts.get(AccountParams.model_validate(params).i_account)
    if account is None:
        return {}
    return {
        "account_info": {
            "i_account": account.i_account,
            "id": account.id,
            "i_customer": account.i_customer,
            "i_product": account.i_product,
            "blocked": _yn(account.blocked),
            "bill_status": account.bill_status,
            "h323_password": account.service_password,
            "expiration_date": account.expiration_date.isoformat() if account.expiration_date else None,
        }
    }


def _account_custom_fields(sim: SimState, params: dict[str, Any]) -> dict[str, Any]:
    account = sim.store.accounts.get(AccountParams.model_validate(params).i_account)
    if account is None:
        return {"custom_fields_values": []}
    return {"custom_fields_values": [{"name": sim.settings.portabilling_imei_field, "text_value": account.imei}]}


def _account_list(sim: SimState, params: dict[str, Any]) -> dict[str, Any]:
    page = AccountListParams.model_validate(params)
    accounts = sorted((a for a in sim.store.accounts.values() if a.i_customer == page.i_customer), key=_by_i)
    chosen = accounts[page.offset : page.offset + page.limit]
    return {
        "account_list": [{"i_account": a.i_account, "id": a.id, "bill_status": a.bill_status} for a in chosen],
        "total": len(accounts),
    }


def _by_i(account: Account) -> int:
    return account.i_account


def _customer_info(sim: SimState, params: dict[str, Any]) -> dict[str, Any]:
    customer = sim.store.customers.get(CustomerParams.model_validate(params).i_customer)
    if customer is None:
        return {}
    info = {
        "i_customer": customer.i_customer,
        "name": customer.name,
        "blocked": _yn(customer.blocked),
        "bill_status": "S" if customer.suspended else "O",
    }
    return {"customer_info": info}


def _customer_custom_fields(sim: SimState, params: dict[str, Any]) -> dict[str, Any]:
    customer = sim.store.customers.get(CustomerParams.model_validate(params).i_customer)
    fields = customer.custom_fields if customer is not None else {}
    return {"custom_fields_values": [{"name": name, "text_value": value} for name, value in fields.items()]}


def _product_info(sim: SimState, params: dict[str, Any]) -> dict[str, Any]:
    product = sim.store.products.get(ProductParams.model_validate(params).i_product)
    if product is None:
        return {}
    # Where PortaBilling's product_info shows the messaging service policy's "Send push event to
    # AudioCodes CMMS" has no public source: this shape is the simulator's own (the service reads it
    # where PORTABILLING_MESSAGING_POLICY_PATH says, this shape by default).
    policy = {"service": "messaging", "push_events": _yn(product.messaging_push_events)}
    info: dict[str, Any] = {"i_product": product.i_product, "name": product.name}
    if product.messaging_policy_shown:
        info["service_policies"] = [policy]
    return {"product_info": info}


_METHODS: dict[str, Callable[[SimState, dict[str, Any]], dict[str, Any]]] = {
    "Account/get_account_info": _account_info,
    "Account/get_custom_fields_values": _account_custom_fields,
    "Account/get_account_list": _account_list,
    "Customer/get_customer_info": _customer_info,
    "Customer/get_custom_fields_values": _customer_custom_fields,
    "Product/get_product_info": _product_info,
}
