"""The JSON API subset provisioning reads ("Retrieving data from PortaBilling").

Every call is `POST /rest/<Service>/<method>` with `{"params": {...}}`; all but `Session/login` carry
`Authorization: Bearer <access_token>`. Faults are answered as PortaBilling does, with HTTP 500 and
`{"faultcode", "faultstring"}`: `Server.Session.auth_failed` for a refused login, one of the session
faults of `fixtures/session_faults.json` for a missing, unknown or expired token
(`Server.Session.check_auth.auth_failed` unless `/_sim/faults` chose another), `Client.validation`
for malformed parameters. An unknown entity is no fault: its answer is `{}` (or an empty list).

The answers are built from the public examples in `fixtures/` (`simulators.portabilling.answers`):
custom field values in `db_value`, every field of the object's class listed (an empty one `null`);
`total` of an account list only with `get_total`; `bill_status` any letter; `h323_password` left out
for a role that may not read it (`/_sim/faults` `hidden_fields`).
"""

import asyncio
import hmac
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from simulators.portabilling import answers
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


class AccountLookup(BaseModel):
    """`Account/get_account_info` takes the account's `i_account` or its `id`."""

    i_account: int | None = None
    id: str | None = None


class CustomerParams(BaseModel):
    i_customer: int


class ProductParams(BaseModel):
    i_product: int


class AccountListParams(BaseModel):
    i_customer: int | None = None  # None: every account
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)
    get_total: int = 0


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
            code = sim.faults.session_fault
            return fault(code, answers.session_faults()[code])
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
    lookup = AccountLookup.model_validate(params)
    if lookup.i_account is not None:
        account = sim.store.accounts.get(lookup.i_account)
    elif lookup.id is not None:
        account = sim.store.account_by_id(lookup.id)
    else:
        raise ValueError("get_account_info takes i_account or id")
    if account is None:
        return {}
    values = {
        "i_account": account.i_account,
        "id": account.id,
        "i_customer": account.i_customer,
        "i_product": account.i_product,
        "blocked": _yn(account.blocked),
        "bill_status": account.bill_status,
        "h323_password": account.service_password,
        "expiration_date": account.expiration_date.isoformat() if account.expiration_date else None,
    }
    return {"account_info": answers.account_info(values, hidden=frozenset(sim.faults.hidden_fields))}


def _custom_fields(sim: SimState, fields: dict[str, str | None]) -> dict[str, Any]:
    """Every field the installation defines for the object, with its value or `null`."""
    hidden = set(sim.faults.undefined_custom_fields)
    entries = [answers.custom_field(name, value) for name, value in fields.items() if name not in hidden]
    return {"custom_fields_values": entries}


def _account_custom_fields(sim: SimState, params: dict[str, Any]) -> dict[str, Any]:
    account = sim.store.accounts.get(AccountParams.model_validate(params).i_account)
    if account is None:
        return {"custom_fields_values": []}
    return _custom_fields(sim, {sim.settings.portabilling_imei_field: account.imei})


def _account_list(sim: SimState, params: dict[str, Any]) -> dict[str, Any]:
    page = AccountListParams.model_validate(params)
    accounts = sorted((a for a in sim.store.accounts.values() if page.i_customer in (None, a.i_customer)), key=_by_i)
    chosen = accounts[page.offset : page.offset + page.limit]
    items = [{"i_account": a.i_account, "id": a.id, "bill_status": a.bill_status} for a in chosen]
    return answers.account_list(items, len(accounts), with_total=bool(page.get_total))


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


# The customer custom fields the simulated installation defines (besides any other the admin sets).
CUSTOMER_FIELDS = ("profileName", "domain")


def _customer_custom_fields(sim: SimState, params: dict[str, Any]) -> dict[str, Any]:
    customer = sim.store.customers.get(CustomerParams.model_validate(params).i_customer)
    if customer is None:
        return {"custom_fields_values": []}
    fields: dict[str, str | None] = dict.fromkeys(CUSTOMER_FIELDS)
    fields.update(customer.custom_fields)
    return _custom_fields(sim, fields)


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
