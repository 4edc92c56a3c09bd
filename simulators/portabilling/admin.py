"""The control API's admin half: act as a PortaBilling administrator (`/_sim/products`, `/_sim/customers`,
`/_sim/accounts`, their wallets). Each change emits the ESPF events PortaBilling would, listed in the
answer's `events`; a product edit emits none (PortaBilling has no event for one). No auth: the
simulator listens on loopback, like the CMMS simulator's control API.
"""

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from contracts.portabilling import EventType
from simulators.portabilling.deps import SimDep, SimState
from simulators.portabilling.store import Account

router = APIRouter(prefix="/_sim")

Id = Annotated[int, Path(ge=1)]
Text = Annotated[str, Field(min_length=1, max_length=256)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewProduct(Body):
    """`messaging_policy_shown: false`: its product_info has no `service_policies` at all, as an
    installation answering in a shape the service was not told of."""

    name: Text
    messaging_push_events: bool = False
    messaging_policy_shown: bool = True


class ProductChanges(Body):
    name: Text = "-"
    messaging_push_events: bool = False


class ProductView(BaseModel):
    i_product: int
    name: str
    messaging_push_events: bool
    messaging_policy_shown: bool


class NewCustomer(Body):
    name: Text
    custom_fields: dict[str, str] = Field(default_factory=dict)


class CustomerChanges(Body):
    """`custom_fields` are merged into the customer's (a null removes one); the rest replace."""

    name: Text = "-"
    blocked: bool = False
    suspended: bool = False  # bill_status S
    custom_fields: dict[str, str | None] = Field(default_factory=dict)


class Emitted(BaseModel):
    i_event: int
    event_type: str


class CustomerView(BaseModel):
    i_customer: int
    name: str
    blocked: bool
    suspended: bool
    custom_fields: dict[str, str]
    events: list[Emitted] = Field(default_factory=list)


class NewAccount(Body):
    """A new account; `service_password` (the SIP password) is generated when absent. `messaging_units`
    gives it a first messaging wallet entry, lasting `messaging_valid_days` (absent: no expiry).
    `bill_status`: its letter as given (any letter, one a later release may have), over `inactive`.
    `silent`: created with no ESPF event, as an account that existed before the service was connected."""

    id: Text
    i_customer: int
    i_product: int
    service_password: Text | None = None
    web_password: Text | None = None
    imei: Text | None = None
    blocked: bool = False
    inactive: bool = False  # bill_status I: not yet activated
    expiration_date: date | None = None
    messaging_units: int | None = Field(default=None, ge=0)
    messaging_valid_days: int | None = Field(default=None, ge=1)
    bill_status: str | None = Field(default=None, pattern="^[A-Z]$")
    silent: bool = False


class AccountChanges(Body):
    """Any of these; a null `imei` or `expiration_date` removes it. `closed: true` terminates the account
    (bill_status C: no change after that), `inactive: false` activates it (bill_status I → O)."""

    id: Text = "-"
    service_password: Text = "-"
    web_password: Text = "-"
    blocked: bool = False
    closed: bool = False
    inactive: bool = False
    imei: Text | None = None
    i_product: int = 0
    expiration_date: date | None = None


class TopUpBody(Body):
    service: Literal["messaging"] = "messaging"
    units: int = Field(gt=0)
    valid_days: int | None = Field(default=None, ge=1)
    # A lifetime shorter than PortaBilling's days can say, for tests and demos of an expiry; wins over days.
    valid_seconds: float | None = Field(default=None, gt=0)

    @property
    def lifetime(self) -> timedelta | None:
        if self.valid_seconds is not None:
            return timedelta(seconds=self.valid_seconds)
        return timedelta(days=self.valid_days) if self.valid_days is not None else None


class ChargeBody(Body):
    service: Literal["messaging"] = "messaging"
    units: int = Field(gt=0)


class WalletView(BaseModel):
    service: str
    balance: int
    expires_at: datetime | None


class AccountView(BaseModel):
    """An account as the admin sees it, passwords aside."""

    i_account: int
    id: str
    i_customer: int
    i_product: int
    blocked: bool
    bill_status: str
    imei: str | None
    expiration_date: date | None
    wallets: list[WalletView]
    events: list[Emitted] = Field(default_factory=list)  # emitted by the change answered


class AccountRecord(AccountView):
    """The whole record (`POST /_sim/accounts` and `GET /_sim/accounts/{i}` only): loopback only."""

    service_password: str
    web_password: str


# --- products ---


@router.post("/products", status_code=status.HTTP_201_CREATED)
async def add_product(body: NewProduct, sim: SimDep) -> ProductView:
    product = sim.store.add_product(body.name, body.messaging_push_events, body.messaging_policy_shown)
    return ProductView(**vars(product))


@router.patch("/products/{i_product}")
async def change_product(i_product: Id, body: ProductChanges, sim: SimDep) -> ProductView:
    """Change a product; PortaBilling emits no event for that (its accounts are not told)."""
    product = sim.store.change_product(i_product, body.model_dump(include=body.model_fields_set))
    return ProductView(**vars(product))


@router.get("/products/{i_product}")
async def get_product(i_product: Id, sim: SimDep) -> ProductView:
    return ProductView(**vars(sim.store.product(i_product)))


# --- customers ---


@router.post("/customers", status_code=status.HTTP_201_CREATED)
async def add_customer(body: NewCustomer, sim: SimDep) -> CustomerView:
    customer = sim.store.add_customer(body.name, body.custom_fields)
    emitted = _emit(sim, [EventType.CUSTOMER_CREATED], i_customer=customer.i_customer)
    return CustomerView(**vars(customer), events=emitted)


@router.patch("/customers/{i_customer}")
async def change_customer(i_customer: Id, body: CustomerChanges, sim: SimDep) -> CustomerView:
    event_types = sim.store.change_customer(i_customer, body.model_dump(include=body.model_fields_set))
    emitted = _emit(sim, event_types, i_customer=i_customer)
    return CustomerView(**vars(sim.store.customer(i_customer)), events=emitted)


@router.get("/customers/{i_customer}")
async def get_customer(i_customer: Id, sim: SimDep) -> CustomerView:
    return CustomerView(**vars(sim.store.customer(i_customer)))


@router.delete("/customers/{i_customer}", status_code=status.HTTP_204_NO_CONTENT, responses={409: {}})
async def delete_customer(i_customer: Id, sim: SimDep) -> Response:
    """Delete a customer whose accounts are all closed (409 otherwise)."""
    sim.store.delete_customer(i_customer)
    _emit(sim, [EventType.CUSTOMER_DELETED], i_customer=i_customer)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- accounts ---


@router.post("/accounts", status_code=status.HTTP_201_CREATED, responses={409: {}, 422: {}})
async def add_account(body: NewAccount, sim: SimDep) -> AccountRecord:
    """Create an account (`silent`: with no event); the answer is the only one (with `GET`) that shows
    its passwords."""
    account = sim.store.add_account(body.model_dump(), datetime.now(UTC))
    created: list[str] = [] if body.silent else [EventType.ACCOUNT_NEW, EventType.SUBSCRIBER_CREATED]
    emitted = _emit(sim, created, i_account=account.i_account)
    if body.messaging_units and body.messaging_valid_days is not None:
        _watch_lapse(sim, account.i_account, timedelta(days=body.messaging_valid_days))
    return _record(account, emitted)


@router.patch("/accounts/{i_account}", responses={404: {}, 409: {}, 422: {}})
async def change_account(i_account: Id, body: AccountChanges, sim: SimDep) -> AccountView:
    event_types = sim.store.change_account(i_account, body.model_dump(include=body.model_fields_set))
    emitted = _emit(sim, event_types, i_account=i_account)
    return _view(sim.store.account(i_account), emitted)


@router.delete("/accounts/{i_account}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}})
async def remove_account(i_account: Id, sim: SimDep) -> Response:
    """Remove the account's record, as a purge of PortaBilling's database would: no event is emitted, and
    the JSON API and the status API no longer know it (the next event about it, or its customer's
    rollout, finds it gone)."""
    sim.store.account(i_account)
    del sim.store.accounts[i_account]
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/accounts/{i_account}")
async def get_account(i_account: Id, sim: SimDep) -> AccountRecord:
    """The whole record, passwords included (the admin's view)."""
    return _record(sim.store.account(i_account), [])


@router.post("/accounts/{i_account}/topups", responses={404: {}, 409: {}})
async def top_up(i_account: Id, body: TopUpBody, sim: SimDep) -> AccountView:
    """Add units (a new wallet entry, lasting `valid_days`); emits Account/AvailableFundsAppear, and
    Account/Service/Msg/QuotaExceeded when they lapse leaving no live units."""
    sim.store.top_up(i_account, body.service, body.units, body.lifetime, datetime.now(UTC))
    emitted = _emit(sim, [EventType.ACCOUNT_FUNDS_APPEAR], i_account=i_account)
    if body.lifetime is not None:
        _watch_lapse(sim, i_account, body.lifetime)
    return _view(sim.store.account(i_account), emitted)


@router.post("/accounts/{i_account}/charges", responses={404: {}, 409: {}})
async def charge(i_account: Id, body: ChargeBody, sim: SimDep) -> AccountView:
    """Spend units, the soonest to lapse first (409 when there are not enough live ones); spending the
    last live unit emits Account/Service/Msg/QuotaExceeded."""
    ran_dry = sim.store.charge(i_account, body.service, body.units, datetime.now(UTC))
    emitted = _emit(sim, [EventType.ACCOUNT_MSG_QUOTA_EXCEEDED] if ran_dry else [], i_account=i_account)
    return _view(sim.store.account(i_account), emitted)


def _watch_lapse(sim: SimState, i_account: int, lifetime: timedelta) -> None:
    """When units lapse and leave the account none to spend, PortaBilling suspends its messaging and says
    so with the event a charge spending the last unit sends (`Account/Service/Msg/QuotaExceeded`)."""

    def lapsed() -> None:
        account = sim.store.accounts.get(i_account)
        if account is not None and not account.closed and account.live_units("messaging", datetime.now(UTC)) == 0:
            _emit(sim, [EventType.ACCOUNT_MSG_QUOTA_EXCEEDED], i_account=i_account)

    # A moment after the lapse, so that the units are seen lapsed; a lapse after a charge ran the wallet
    # dry emits it again, as PortaBilling repeats a state it is told again.
    asyncio.get_running_loop().call_later(lifetime.total_seconds() + 0.05, lapsed)


def _emit(
    sim: SimState, event_types: list[str], *, i_account: int | None = None, i_customer: int | None = None
) -> list[Emitted]:
    events = [sim.events.emit(t, i_account=i_account, i_customer=i_customer) for t in event_types]
    return [Emitted(i_event=e.i_event, event_type=e.event_type) for e in events]


def _view(account: Account, emitted: list[Emitted]) -> AccountView:
    return AccountView(**_fields(account), events=emitted)


def _record(account: Account, emitted: list[Emitted]) -> AccountRecord:
    secrets = {"service_password": account.service_password, "web_password": account.web_password}
    return AccountRecord(**_fields(account), **secrets, events=emitted)


def _fields(account: Account) -> dict[str, object]:
    wallets = [WalletView(service=w.service, balance=w.balance, expires_at=w.expires_at) for w in account.wallets]
    return {
        "i_account": account.i_account,
        "id": account.id,
        "i_customer": account.i_customer,
        "i_product": account.i_product,
        "blocked": account.blocked,
        "bill_status": account.bill_status,
        "imei": account.imei,
        "expiration_date": account.expiration_date,
        "wallets": wallets,
    }
