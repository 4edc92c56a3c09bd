"""What the simulated PortaBilling holds: products, customers, accounts and their messaging wallets,
in memory (a restart starts empty).

Each admin change returns the ESPF event types PortaBilling would emit for it, in order; the control
API emits them. Everything runs on the event loop, so no lock.
"""

import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from contracts.portabilling import EventType


class SimError(Exception):
    """An admin change PortaBilling would refuse; `status` is the control API's answer."""

    status = 422


class NotFound(SimError):
    status = 404


class Conflict(SimError):
    status = 409


@dataclass
class Product:
    i_product: int
    name: str
    messaging_push_events: bool
    messaging_policy_shown: bool = True  # False: product_info has no `service_policies`


@dataclass
class Customer:
    i_customer: int
    name: str
    blocked: bool = False
    suspended: bool = False  # bill_status S (an unpaid invoice, say): its accounts are suspended with it
    custom_fields: dict[str, str] = field(default_factory=dict)


@dataclass
class TopUp:
    """One service wallet entry: what one top-up added and has left."""

    service: str
    balance: int
    expires_at: datetime | None

    def is_live(self, now: datetime) -> bool:
        return self.balance > 0 and (self.expires_at is None or self.expires_at > now)


@dataclass
class Account:
    i_account: int
    id: str
    i_customer: int
    i_product: int
    service_password: str  # h323_password: the SIP password
    web_password: str
    blocked: bool = False
    bill_status: str = "O"  # any letter: O open, I inactive, C closed, or one a later release has
    imei: str | None = None
    expiration_date: date | None = None
    wallets: list[TopUp] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.bill_status == "C"

    def live_units(self, service: str, now: datetime) -> int:
        return sum(w.balance for w in self.wallets if w.service == service and w.is_live(now))


def new_password() -> str:
    return secrets.token_urlsafe(12)


class Store:
    """The simulated PortaBilling's records. Ids come from separate ranges (products from 101,
    customers from 1001, accounts from 1000001) so that one taken for another shows."""

    def __init__(self, id_offset: int = 0) -> None:
        self.products: dict[int, Product] = {}
        self.customers: dict[int, Customer] = {}
        self.accounts: dict[int, Account] = {}
        self._product_ids = itertools.count(id_offset + 101)
        self._customer_ids = itertools.count(id_offset + 1001)
        self._account_ids = itertools.count(id_offset + 1000001)

    # --- products (PortaBilling emits no event for a product edit) ---

    def add_product(self, name: str, messaging_push_events: bool, messaging_policy_shown: bool = True) -> Product:
        product = Product(next(self._product_ids), name, messaging_push_events, messaging_policy_shown)
        self.products[product.i_product] = product
        return product

    def change_product(self, i_product: int, changes: dict[str, Any]) -> Product:
        product = self.product(i_product)
        for name, value in changes.items():
            setattr(product, name, value)
        return product

    def product(self, i_product: int) -> Product:
        try:
            return self.products[i_product]
        except KeyError:
            raise NotFound(f"no product {i_product}") from None

    # --- customers ---

    def add_customer(self, name: str, custom_fields: dict[str, str]) -> Customer:
        customer = Customer(next(self._customer_ids), name, custom_fields=dict(custom_fields))
        self.customers[customer.i_customer] = customer
        return customer

    def change_customer(self, i_customer: int, changes: dict[str, Any]) -> list[str]:
        """`custom_fields` are merged (None removes one); `name`, `blocked` and `suspended` replace."""
        customer = self.customer(i_customer)
        events: list[str] = []
        fields = dict(customer.custom_fields)
        for name, value in (changes.pop("custom_fields", None) or {}).items():
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
        if fields != customer.custom_fields:
            customer.custom_fields = fields
            events.append(EventType.CUSTOMER_CUSTOM_FIELD_CHANGED)
        changed = {name: value for name, value in changes.items() if getattr(customer, name) != value}
        for name, value in changed.items():
            setattr(customer, name, value)
        if "blocked" in changed:
            events.append(EventType.CUSTOMER_BLOCKED if changed["blocked"] else EventType.CUSTOMER_UNBLOCKED)
        if "suspended" in changed:
            # MR115's names ("Events that ESPF handlers support"); MR107 said Suspend and Unsuspend.
            events.append("Customer/Status/Suspended" if changed["suspended"] else "Customer/Status/SuspensionRemoved")
        if events or changed:
            events.append(EventType.CUSTOMER_UPDATED)
        return events

    def delete_customer(self, i_customer: int) -> None:
        self.customer(i_customer)
        if any(a.i_customer == i_customer and not a.closed for a in self.accounts.values()):
            raise Conflict(f"customer {i_customer} has accounts that are not closed")
        del self.customers[i_customer]

    def customer(self, i_customer: int) -> Customer:
        try:
            return self.customers[i_customer]
        except KeyError:
            raise NotFound(f"no customer {i_customer}") from None

    # --- accounts ---

    def add_account(self, values: dict[str, Any], now: datetime) -> Account:
        if values["i_customer"] not in self.customers:
            raise SimError(f"no customer {values['i_customer']}")
        if values["i_product"] not in self.products:
            raise SimError(f"no product {values['i_product']}")
        self._check_id_free(values["id"])
        units, valid_days = values.pop("messaging_units", None), values.pop("messaging_valid_days", None)
        inactive = values.pop("inactive", False)
        letter = values.pop("bill_status", None) or ("I" if inactive else "O")
        values.setdefault("service_password", None)
        values["service_password"] = values["service_password"] or new_password()
        values["web_password"] = values.get("web_password") or new_password()
        values.pop("silent", None)
        account = Account(i_account=next(self._account_ids), bill_status=letter, **values)
        if units:
            account.wallets.append(_top_up("messaging", units, valid_days, now))
        self.accounts[account.i_account] = account
        return account

    def change_account(self, i_account: int, changes: dict[str, Any]) -> list[str]:
        """Apply the changes (each field given); the events, in a fixed order, for those that changed."""
        account = self.open_account(i_account)
        changed = {name: value for name, value in changes.items() if _current(account, name) != value}
        if "id" in changed:
            self._check_id_free(changed["id"])
        if "i_product" in changed and changed["i_product"] not in self.products:
            raise SimError(f"no product {changed['i_product']}")
        if changed.get("inactive") is True:
            raise Conflict("an active account cannot become inactive again")
        events: list[str] = []
        for name, value in changed.items():
            if name == "closed":  # an open account's `closed: false` is no change; a closed one is refused above
                account.bill_status = "C"
            elif name == "inactive":
                account.bill_status = "O"
            else:
                setattr(account, name, value)
        for name, event_types in _EVENTS_OF_CHANGE:
            if name in changed:
                events += event_types(changed[name])
        # Subscriber/Updated once, however many changes call for it.
        return [e for i, e in enumerate(events) if e != EventType.SUBSCRIBER_UPDATED or e not in events[:i]]

    def top_up(self, i_account: int, service: str, units: int, lifetime: timedelta | None, now: datetime) -> TopUp:
        entry = TopUp(service=service, balance=units, expires_at=now + lifetime if lifetime is not None else None)
        self.open_account(i_account).wallets.append(entry)
        return entry

    def charge(self, i_account: int, service: str, units: int, now: datetime) -> bool:
        """Spend units, those lapsing first first; True when that spent the last live unit."""
        account = self.open_account(i_account)
        if account.live_units(service, now) < units:
            raise Conflict(f"account {i_account} has fewer than {units} live {service} units")
        live = [w for w in account.wallets if w.service == service and w.is_live(now)]
        never = datetime.max.replace(tzinfo=UTC)
        for entry in sorted(live, key=lambda w: w.expires_at or never):
            spent = min(entry.balance, units)
            entry.balance -= spent
            units -= spent
        return account.live_units(service, now) == 0

    def account_by_id(self, account_id: str) -> Account | None:
        """The account holding this id: the live one, else the last closed one."""
        holding = [a for a in self.accounts.values() if a.id == account_id]
        live = [a for a in holding if not a.closed]
        chosen = live or holding[-1:]
        return chosen[0] if chosen else None

    def account(self, i_account: int) -> Account:
        try:
            return self.accounts[i_account]
        except KeyError:
            raise NotFound(f"no account {i_account}") from None

    def open_account(self, i_account: int) -> Account:
        account = self.account(i_account)
        if account.closed:
            raise Conflict(f"account {i_account} is closed")
        return account

    def _check_id_free(self, account_id: str) -> None:
        if any(a.id == account_id and not a.closed for a in self.accounts.values()):
            raise Conflict(f"account id {account_id!r} is taken")


def _top_up(service: str, units: int, valid_days: int | None, now: datetime) -> TopUp:
    expires = now + timedelta(days=valid_days) if valid_days is not None else None
    return TopUp(service=service, balance=units, expires_at=expires)


def _current(account: Account, name: str) -> Any:
    if name == "closed":
        return account.closed
    if name == "inactive":
        return account.bill_status == "I"
    return getattr(account, name)


def _always(*event_types: str) -> Callable[[Any], list[str]]:
    return lambda _value: list(event_types)


# Per field changed, the events PortaBilling emits, in this order.
_EVENTS_OF_CHANGE: list[tuple[str, Callable[[Any], list[str]]]] = [
    ("id", _always(EventType.ACCOUNT_ID_CHANGED)),
    ("service_password", _always(EventType.ACCOUNT_SERVICE_PASSWORD_CHANGED, EventType.SUBSCRIBER_UPDATED)),
    ("web_password", _always(EventType.ACCOUNT_PASSWORD_CHANGED)),
    ("blocked", lambda blocked: [EventType.ACCOUNT_BLOCKED if blocked else EventType.ACCOUNT_UNBLOCKED]),
    ("imei", _always(EventType.ACCOUNT_CUSTOM_FIELD_CHANGED)),
    ("i_product", _always(EventType.ACCOUNT_PRODUCT_CHANGED)),
    ("expiration_date", _always(EventType.ACCOUNT_EXPIRATION_DATE_CHANGED)),
    # Activation (bill_status I → O) has no event type of its own in the ESPF list: the webhook group's update.
    ("inactive", _always(EventType.SUBSCRIBER_UPDATED)),
    ("closed", _always(EventType.ACCOUNT_CLOSED, EventType.SUBSCRIBER_DELETED)),
]
