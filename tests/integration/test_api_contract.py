"""The API's contract is its OpenAPI document: property-based testing (schemathesis) holds the API to it.

The document the running stack serves (real API socket, real worker, real Temporal dev server, a CMMS
simulator of its own, SQLite) is loaded, and every operation in it is called once per caller: with
the website, CMMS and admin keys, and with no key. Every check schemathesis has is on, among them: no
server error; every status, content type and response body documented; schema-invalid requests
refused; schema-valid requests accepted. A caller the operation does not admit must get exactly 403,
one without a key exactly 401.

A schema-valid request refused for a reason its schema could state is a failure. The reasons no
schema can state are taught or named here:

- formats: an IMEI (15 digits, the last a Luhn check digit) and a mobile number (the numbering plans)
  are `format`s in the document, which the test generates (`imeis`, `mobile_numbers`);
- ids that must exist: half the generated cases name what `seed` made (a reseller, class, customer,
  product, two orders and their accounts, a signup, a reconciliation) in their path, and orders and
  customers name its customer, product, class and reseller in their body, so that the calls go past
  "does not exist" to what they do; the others name random ids and get 404;
- every other refusal is in `REFUSALS` (and `refusals`), with its status, its reason and how its
  problem document is recognised, so that a refusal of another kind with the same status fails.

Examples, per operation and caller: for a caller the operation admits, schemathesis's examples and
coverage phases (the schema's examples, its boundaries, each way to break each constraint, methods
the path does not serve: some 30 to 80 cases) and `ADMITTED_EXAMPLES` (25) fuzzed cases; for one it
refuses, the examples phase and `REFUSED_EXAMPLES` (3) fuzzed cases, as the refusal comes before
anything of the request is read. 25 is where a run stays under 3 minutes on a 2-core machine (about
120 s measured; some 4,000 requests), most of it the admin's calls, since every operation admits the
admin. Generation is deterministic, so a failure in CI is the same failure on a laptop.

The simulator is this module's own: `POST /v1/reconciliations` starts reconciliations, which would
take a shared simulator's records of other tests for orphans.
"""

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, HookContext, Response
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case
from stdnum import luhn

from api.fields import IMEI_FORMAT, MOBILE_NUMBER_FORMAT
from tests.support.access import ACCESS
from tests.support.catalog import Catalog, create, new_id, order_body
from tests.support.database import sqlite_database
from tests.support.orders import finished, submit
from tests.support.simulator import running_simulator
from tests.support.stack import ADMIN_KEY, CMMS_KEY, WEBSITE_KEY, Stack, running_stack, stack_settings
from tests.support.threaded_stack import in_thread

CALLERS: dict[str, str | None] = {"no key": None, "website": WEBSITE_KEY, "cmms": CMMS_KEY, "admin": ADMIN_KEY}
ADMITTED_EXAMPLES = 25
REFUSED_EXAMPLES = 3


# --- what a schema cannot say: formats -------------------------------------------------------------


def imeis() -> st.SearchStrategy[str]:
    """15 digits whose last is the Luhn check digit of the 14 before."""
    return st.text("0123456789", min_size=14, max_size=14).map(lambda body: body + luhn.calc_check_digit(body))


def _example_mobiles() -> list[str]:
    """A mobile number of every region the numbering plans know (libphonenumber's), E.164 and spaced."""
    numbers = [
        phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    ]
    styles = (phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return [phonenumbers.format_number(number, style) for number in numbers if number is not None for style in styles]


def mobile_numbers() -> st.SearchStrategy[str]:
    return st.sampled_from(_example_mobiles())


schemathesis.openapi.format(IMEI_FORMAT, imeis())
schemathesis.openapi.format(MOBILE_NUMBER_FORMAT, mobile_numbers())


# --- what a schema cannot say: refusals ------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A refusal of a schema-valid request whose reason no schema can state."""

    status: int
    reason: str
    recognise: Callable[[dict[str, Any]], bool]


def _errors(kind: str, field: str = "") -> Callable[[dict[str, Any]], bool]:
    """Every offending field is of `kind`, under `field`."""

    def recognise(problem: dict[str, Any]) -> bool:
        errors = problem.get("errors") or []
        return bool(errors) and all(e.get("type") == kind and e["field"].startswith(field) for e in errors)

    return recognise


def _detail(pattern: str) -> Callable[[dict[str, Any]], bool]:
    return lambda problem: re.search(pattern, problem["detail"]) is not None


MUST_EXIST = Refusal(
    404,
    "the id in the path must name something that exists: a schema says what ids look like, not which exist",
    _detail("does not exist|has no .* wallet|has had no rollout|no SMS has this delivery report token|^Not Found$"),
)
OPAQUE_CURSOR = Refusal(
    422, "`cursor` must be a `next` this list gave: an opaque token, which no pattern describes", _errors("cursor")
)
TAKEN = Refusal(
    409, "the id is taken (examples repeat ids): which ids are is billing's data", _detail("already exists")
)
UNKNOWN_REFERENCE = Refusal(
    422, "an id in the body must name something that exists: billing's data", _errors("unknown_reference")
)
CUSTOM_FIELDS = Refusal(
    422,
    "a custom field must be enabled on the customer's class, its value allowed by its definition (billing's data), "
    "and a profile one the CMMS knows (KNOWN_PROFILES)",
    lambda problem: all(e["field"].startswith("custom_fields") for e in problem.get("errors") or [{"field": ""}]),
)
IN_THE_FUTURE = Refusal(
    422, "`expires_at` must be after now, which no schema can say", _errors("datetime_future", "body.expires_at")
)
TERMINATED = Refusal(409, "a terminated account changes no more: its state, not its shape", _detail("is terminated"))
WALLET_STATE = Refusal(
    409,
    "a wallet's balance, lifetime and existence are billing's state: a charge over the balance, units past "
    "MAX_BALANCE, an expired wallet, a second wallet",
    _detail("nothing was (charged|added)|already has a|gets its .* wallet with the account|is terminated"),
)
KEY_REUSED = Refusal(
    422,
    "an Idempotency-Key belongs to the request it first came with (examples repeat keys)",
    _detail("Idempotency-Key"),
)
LIMITED = Refusal(
    429,
    "signup calls are limited per number, per client, per signup and by a resend cooldown: how often is no schema's",
    lambda problem: problem["status"] == 429,
)

# By operation, as the document names it (`METHOD /path`); MUST_EXIST and OPAQUE_CURSOR are added where
# there is a path parameter or a paged list (`refusals`).
REFUSALS: dict[str, tuple[Refusal, ...]] = {
    "POST /v1/resellers": (TAKEN,),
    "POST /v1/customer-classes": (
        TAKEN,
        Refusal(
            422,
            "a custom field must be one billing defines (custom field definitions are billing's data)",
            _errors("unknown_custom_field", "custom_fields"),
        ),
    ),
    "POST /v1/customers": (TAKEN, UNKNOWN_REFERENCE, CUSTOM_FIELDS),
    "PATCH /v1/customers/{customer_id}": (UNKNOWN_REFERENCE, CUSTOM_FIELDS),
    "DELETE /v1/customers/{customer_id}": (
        Refusal(
            409,
            "a customer with live accounts or an order in progress stays; the OTT customer always does",
            _detail("has live accounts|in progress|holds the OTT signups' accounts"),
        ),
    ),
    "POST /v1/products": (TAKEN,),
    "POST /v1/orders": (
        UNKNOWN_REFERENCE,
        Refusal(
            409,
            "the order id, account id or IMEI is in use already: billing's data",
            _detail("already (exists|belongs)|being provisioned|already in use"),
        ),
    ),
    "PATCH /v1/accounts/{account_id}": (
        TERMINATED,
        Refusal(409, "an IMEI is one live account's: billing's data", _detail("already belongs to another account")),
    ),
    "PUT /v1/accounts/{account_id}/service-policies/messaging": (TERMINATED,),
    "POST /v1/accounts/{account_id}/wallets": (IN_THE_FUTURE, WALLET_STATE),
    "POST /v1/accounts/{account_id}/wallets/messaging/top-ups": (IN_THE_FUTURE, WALLET_STATE, KEY_REUSED),
    "POST /v1/accounts/{account_id}/wallets/messaging/charges": (WALLET_STATE, KEY_REUSED),
    "GET /v1/accounts/{account_id}/wallets/messaging/movements": (TERMINATED,),
    "POST /v1/signups": (LIMITED,),
    "POST /v1/signups/{signup_id}/resend": (LIMITED,),
    "POST /v1/signups/{signup_id}/verify": (
        LIMITED,
        Refusal(422, "the code must be the one the SMS carried", lambda problem: problem["title"] == "Wrong code"),
    ),
    "POST /v1/reconciliations/{reconciliation_id}/confirm": (
        Refusal(
            409,
            "only a held run is confirmed, and only the latest within RECONCILE_HOLD_FOR: the run's state",
            _detail("not held|could be confirmed until|confirm the latest held run"),
        ),
    ),
    "POST /v1/imports": (
        Refusal(
            422,
            "a file must read as a whole (a CSV header naming the columns, at least one row, no NUL): a string "
            "schema says none of it; a row that fails its checks is rejected in a 202, not refused",
            _detail("CSV|no rows|NUL|UTF-8"),
        ),
    ),
    "POST /v1/signups/{signup_id}/confirm": (
        Refusal(
            409,
            "confirm is served with SIGNUP_VERIFICATION=cmms; this deployment verifies the codes itself",
            _detail("billing verifies the code"),
        ),
    ),
}
# The lists paged with an opaque cursor (api.pagination).
LISTS = {f"GET /v1/{name}" for name in ("resellers", "customers", "products", "orders", "accounts", "signups", "audit")}


def refusals(label: str) -> tuple[Refusal, ...]:
    """Every refusal of a schema-valid request that operation `label` may answer."""
    generic: tuple[Refusal, ...] = (MUST_EXIST,) if "{" in label else ()
    if label in LISTS:
        generic += (OPAQUE_CURSOR,)
    return generic + REFUSALS.get(label, ())


def admitted(caller: str, label: str) -> bool:
    method, path = label.split(" ", 1)
    who, _ = ACCESS[(method, path)]
    return who == "anyone" or caller in (who, "admin")


def expected_statuses(caller: str, label: str) -> list[str]:
    """What a schema-valid request of `caller` may get, for schemathesis's positive_data_acceptance."""
    if admitted(caller, label):
        return ["2xx", *sorted({str(refusal.status) for refusal in refusals(label)})]
    return ["401"] if CALLERS[caller] is None else ["403"]


def refusals_are_named(caller: str) -> Callable[[CheckContext, Response, Case[Any]], bool | None]:
    """A check: a schema-valid request that is refused is refused for a reason `refusals` names."""

    def schema_valid_refusals_are_named(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
        meta = case.meta
        if meta is None or not meta.generation.mode.is_positive or is_unexpected_http_status_case(case):
            return None
        label = case.operation.label
        if response.status_code < 400 or not admitted(caller, label):
            return None  # positive_data_acceptance holds a caller the operation refuses to 401 or 403
        problem = response.json()
        if any(r.status == response.status_code and r.recognise(problem) for r in refusals(label)):
            return None
        raise AssertionError(f"{label} refused a schema-valid request for a reason no refusal names: {problem}")

    return schema_valid_refusals_are_named


# --- the stack, and what exists in it -----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    base_url: str
    known: dict[str, str]  # a path parameter's or a body field's name → an id that exists
    disposable_account: str  # the account `DELETE /v1/accounts/{account_id}` may terminate


async def seed(stack: Stack) -> Target:
    """Billing data for the generated cases to name: one of each, and two orders with their accounts."""
    reseller, klass, customer, product = new_id("res"), new_id("class"), new_id("cust"), new_id("prod")
    await create(stack, "/v1/resellers", {"reseller_id": reseller, "name": "Reseller", "domain": "contract.example"})
    fields = ["profileName", "domain"]
    await create(stack, "/v1/customer-classes", {"customer_class_id": klass, "name": "Retail", "custom_fields": fields})
    await create(
        stack,
        "/v1/customers",
        {"customer_id": customer, "name": "Ada", "customer_class_id": klass, "reseller_id": reseller},
    )
    messaging = {"push_events": True, "initial_wallet": {"amount": 1000}}
    await create(
        stack, "/v1/products", {"product_id": product, "name": "Mobile", "service_policies": {"messaging": messaging}}
    )
    orders = [order_body(Catalog(customer, product)) for _ in range(2)]
    for body in orders:
        await submit(stack, body)
    accounts = [(await finished(stack, body["order_id"]))["account_id"] for body in orders]
    signup = await stack.api.post("/v1/signups", json={"phone_number": "+4915112345678"}, headers=stack.cmms)
    reconciliation = await stack.api.post("/v1/reconciliations", headers=stack.admin)
    assert signup.status_code == 202 and reconciliation.status_code == 202, (signup.text, reconciliation.text)
    known = {
        "reseller_id": reseller,
        "customer_class_id": klass,
        "customer_id": customer,
        "product_id": product,
        "order_id": orders[0]["order_id"],
        "account_id": accounts[0],
        "signup_id": signup.json()["signup_id"],
        "reconciliation_id": reconciliation.json()["reconciliation_id"],
    }
    return Target(str(stack.api.base_url).rstrip("/"), known, disposable_account=accounts[1])


@asynccontextmanager
async def contract_stack(temporal_address: str, directory: Path) -> AsyncIterator[Target]:
    async with running_simulator(directory / "cmms-sim") as sim:
        settings = stack_settings(
            temporal_address,
            sqlite_database(directory),
            sim,
            sms_gateway_url=f"{sim.base_url}/cgi-bin/sendsms",
            sms_username=sim.sms_username,
            sms_password=sim.sms_password,
        )
        async with running_stack(settings, sim) as stack:
            yield await seed(stack)


@pytest.fixture(scope="module")
def target(dev_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    directory = tmp_path_factory.mktemp("contract")
    with in_thread(lambda: contract_stack(dev_server, directory)) as served:
        yield served


# --- schemathesis -----------------------------------------------------------------------------------

# Body fields naming something else, by operation: half the cases name what `seed` made.
REFERENCES = {
    "POST /v1/orders": ("customer_id", "product_id"),
    "POST /v1/customers": ("customer_class_id", "reseller_id"),
    "PATCH /v1/customers/{customer_id}": ("customer_class_id", "reseller_id"),
}
_RESOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")


def config_for(caller: str, document: dict[str, Any], base_url: str) -> schemathesis.Config:
    key = CALLERS[caller]
    labels = [f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item]
    operations = [
        {
            "include-name": label,
            "generation": {"max-examples": ADMITTED_EXAMPLES if admitted(caller, label) else REFUSED_EXAMPLES},
            # A refused caller's request is refused before it is read: its boundaries show nothing more.
            "phases": {"coverage": {"enabled": admitted(caller, label)}},
            "checks": {"positive_data_acceptance": {"expected-statuses": expected_statuses(caller, label)}},
        }
        for label in labels
    ]
    return schemathesis.Config.from_dict(
        {
            "base-url": base_url,
            "headers": {"Authorization": f"Bearer {key}"} if key else {},
            "generation": {"deterministic": True, "database": "none"},
            "operations": operations,
        }
    )


def name_what_exists(schema: schemathesis.BaseSchema, target: Target) -> None:
    """Hooks: half the cases name, in their path and their body's references, what `seed` made."""

    @schema.hook("flatmap_path_parameters")
    def _path(context: HookContext, parameters: dict[str, Any] | None) -> st.SearchStrategy[dict[str, Any] | None]:
        assert context.operation is not None
        if not parameters:
            return st.just(parameters)
        known = {name: target.known[name] for name in parameters if name in target.known}
        if context.operation.label == "DELETE /v1/accounts/{account_id}":
            known["account_id"] = target.disposable_account
        return st.sampled_from([parameters, parameters | known])

    @schema.hook("flatmap_body")
    def _body(context: HookContext, body: Any) -> st.SearchStrategy[Any]:
        assert context.operation is not None
        names = REFERENCES.get(context.operation.label, ())
        if not isinstance(body, dict):
            return st.just(body)
        # Only a value that is a valid id is replaced: one a negative case broke stays broken.
        known = {name: target.known[name] for name in names if _is_id(body.get(name))}
        return st.sampled_from([body, body | known])


def _is_id(value: object) -> bool:
    return isinstance(value, str) and _RESOURCE_ID.fullmatch(value) is not None


@pytest.fixture(scope="module", params=list(CALLERS))
def caller(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def api_schema(target: Target, caller: str) -> schemathesis.BaseSchema:
    document = httpx.get(f"{target.base_url}/openapi.json").raise_for_status().json()
    schema = schemathesis.openapi.from_dict(document, config=config_for(caller, document, target.base_url))
    name_what_exists(schema, target)
    return schema


@pytest.fixture(autouse=True)
def _node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy schemas rename the test's node per operation through `_nodeid`, which
    pytest 9.2's nodes no longer have: give them one (the reports name each operation all the same)."""
    request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_operation_keeps_the_contract(case: Case[Any], caller: str) -> None:
    # The key again, so that the auth checks know it was given, not generated (it is in the config too,
    # so that none is generated).
    key = CALLERS[caller]
    headers = {"Authorization": f"Bearer {key}"} if key else None
    case.call_and_validate(headers=headers, additional_checks=[refusals_are_named(caller)])


def test_a_refusal_is_named_by_its_kind_not_only_its_status() -> None:
    """The refusals recognise their own problem documents: a 422 for a pattern the schema states, or a
    404 of another route, is named by none, so the contract test fails on it."""
    unknown_customer = {
        "detail": "customer 'x' does not exist",
        "errors": [{"field": "customer_id", "type": "unknown_reference"}],
    }
    pattern = {
        "detail": "the request has invalid fields",
        "errors": [{"field": "body.order_id", "type": "string_pattern_mismatch"}],
    }
    orders = refusals("POST /v1/orders")
    assert any(r.status == 422 and r.recognise(unknown_customer) for r in orders)
    assert not any(r.status == 422 and r.recognise(pattern) for r in orders)
    assert not any(r.status == 404 for r in orders), "a path without ids never answers a schema-valid request 404"
    assert expected_statuses("website", "POST /v1/orders") == ["2xx", "409", "422"]
    assert expected_statuses("cmms", "POST /v1/orders") == ["403"]
    assert expected_statuses("no key", "GET /v1/accounts/{account_id}") == ["401"]
