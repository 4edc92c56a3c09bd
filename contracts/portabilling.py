"""The PortaBilling wire format: its JSON API's answers, the ESPF status and events, and what the client
makes of them. Shared by the client (`clients.portabilling.client`) and the PortaBilling simulator.

The ESPF event (`EspfEvent`) is the one model of what PortaBilling POSTs to this service: the receiver
takes it as its request body, the service stores it, the simulator sends it.

The wire models (`*Info`, `*Wire`) read PortaBilling's own spelling (`"Y"`/`"N"` flags, `bill_status`
letters, `h323_password`) and ignore the many fields we do not use; each turns into a result model
(`Pb*`) in plain Python types. Sources: PortaBilling's "Retrieving data from PortaBilling", "Sending
provisioning status for an account via ESPF API" and "Receiving provisioning events".
"""

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    WithJsonSchema,
    field_validator,
)

# The statuses PortaBilling's ESPF status API takes for an account's provisioning.
ProvisioningStatus = Literal["OK", "IN_PROGRESS", "RETRY", "FAILED"]
# The longest message the status API takes.
STATUS_MESSAGE_MAX = 4000
YesNo = Literal["Y", "N"]
# The `bill_status` letters this release decides on: O open, I inactive (not yet activated), C closed
# (terminated). PortaBilling may answer others (a later release's, or one an installation uses): any
# letter is read, and one not named here is pushed blocked (`AccountState.unknown`).
BillStatus = Literal["O", "I", "C"]
# An account's `h323_password` as PortaBilling shows it to an API user whose role may hide it.
H323_PASSWORD = "h323_password"


class AccountState(StrEnum):
    """What an account's `bill_status` letter means here."""

    open = "open"  # O: in service
    inactive = "inactive"  # I: not yet activated: pushed blocked until it is
    closed = "closed"  # C: terminated: removed from the CMMS
    unknown = "unknown"  # any other letter: pushed blocked, with a warning naming it

    @classmethod
    def of(cls, bill_status: str) -> "AccountState":
        return _BILL_STATUS.get(bill_status, cls.unknown)


_BILL_STATUS = {"O": AccountState.open, "I": AccountState.inactive, "C": AccountState.closed}


def as_utc(moment: datetime) -> datetime:
    """A PortaBilling time in UTC: it writes UTC, with or without saying so."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- what the client returns ---


class PbAccount(BaseModel):
    """One PortaBilling account, as provisioning needs it. `service_password` is the SIP password."""

    model_config = ConfigDict(frozen=True)

    i_account: int
    id: str
    i_customer: int
    i_product: int
    blocked: bool
    bill_status: str  # PortaBilling's letter, as answered
    # None: the API user's role does not show `h323_password` (an access level to grant).
    service_password: SecretStr | None
    expiration_date: date | None

    @property
    def state(self) -> AccountState:
        return AccountState.of(self.bill_status)

    @property
    def closed(self) -> bool:
        return self.state == AccountState.closed

    @property
    def inactive(self) -> bool:
        return self.state == AccountState.inactive


class PbCustomer(BaseModel):
    """One PortaBilling customer."""

    model_config = ConfigDict(frozen=True)

    i_customer: int
    name: str
    blocked: bool
    suspended: bool = False  # bill_status S: its accounts are suspended with it


class PbProduct(BaseModel):
    """One PortaBilling product: its `product_info` as PortaBilling answers it (`info`), where the
    messaging service policy is looked for (`AttributePath`, PORTABILLING_MESSAGING_POLICY_PATH)."""

    model_config = ConfigDict(frozen=True)

    i_product: int
    name: str
    info: dict[str, Any]


# --- the JSON API's answers, as PortaBilling spells them ---


class LoginAnswer(BaseModel):
    """`Session/login`. Only the access token is used: a new login replaces an expiring session."""

    access_token: SecretStr
    expires_at: datetime

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class Fault(BaseModel):
    """A JSON API fault (PortaBilling answers faults with HTTP 500)."""

    faultcode: str
    faultstring: str = ""


class AccountInfo(BaseModel):
    """`Account/get_account_info`'s `account_info`. `bill_status`: any letter (see `AccountState`);
    `h323_password` absent: the API user's role hides it."""

    i_account: int
    id: str
    i_customer: int
    i_product: int
    blocked: YesNo
    bill_status: str = Field(min_length=1)
    h323_password: SecretStr | None = None
    expiration_date: date | None = None

    def account(self) -> PbAccount:
        return PbAccount(
            i_account=self.i_account,
            id=self.id,
            i_customer=self.i_customer,
            i_product=self.i_product,
            blocked=self.blocked == "Y",
            bill_status=self.bill_status,
            service_password=self.h323_password,
            expiration_date=self.expiration_date,
        )


class AccountInfoAnswer(BaseModel):
    """No `account_info`: PortaBilling has no such account."""

    account_info: AccountInfo | None = None


class CustomFieldValue(BaseModel):
    """One entry of `custom_fields_values`. Public clients that run against live installations read and
    write a field's value as `db_value` (`Account/update_custom_fields_values` takes `{name, db_value}`);
    `text_value` is read where `db_value` is absent or empty."""

    name: str
    db_value: str | int | float | None = None
    text_value: str | int | float | None = None

    def value(self) -> str | None:
        """The field's value as text; None when it holds none."""
        for value in (self.db_value, self.text_value):
            if value is not None and str(value) != "":
                return str(value)
        return None


class CustomFieldsAnswer(BaseModel):
    """`Account/get_custom_fields_values` and `Customer/get_custom_fields_values`: every custom field the
    object's class has, with a value or without one."""

    custom_fields_values: list[CustomFieldValue] = Field(default_factory=list)

    def values(self) -> dict[str, str | None]:
        """Every field the object has, by name, with its value (None: the field holds none). A name
        missing here is a field the installation does not define for the object."""
        return {field.name: field.value() for field in self.custom_fields_values}


class AccountListItem(BaseModel):
    """One entry of `Account/get_account_list`; any `bill_status` letter (one a later release adds
    never breaks a page)."""

    i_account: int
    id: str
    bill_status: str = ""

    @property
    def state(self) -> AccountState:
        return AccountState.of(self.bill_status)


class AccountListAnswer(BaseModel):
    """`Account/get_account_list`: one page, in i_account order, closed accounts included. `total` is
    answered only when the call asks for it (`get_total`); None: not answered."""

    account_list: list[AccountListItem] = Field(default_factory=list)
    total: int | None = None


class CustomerInfo(BaseModel):
    i_customer: int
    name: str
    blocked: YesNo
    # Any letter is taken; S (suspended, "Events that ESPF handlers support": Customers.bill_status
    # set to 'S') is the one that changes what is pushed.
    bill_status: str = "O"

    def customer(self) -> PbCustomer:
        return PbCustomer(
            i_customer=self.i_customer, name=self.name, blocked=self.blocked == "Y", suspended=self.bill_status == "S"
        )


class CustomerInfoAnswer(BaseModel):
    """No `customer_info`: PortaBilling has no such customer."""

    customer_info: CustomerInfo | None = None


class ProductInfo(BaseModel):
    """`Product/get_product_info`'s `product_info`, every field kept: where a product's messaging service
    policy shows has no public source, so it is looked for where the operator says (`AttributePath`)."""

    model_config = ConfigDict(extra="allow")

    i_product: int
    name: str

    def product(self) -> PbProduct:
        return PbProduct(i_product=self.i_product, name=self.name, info=self.model_dump())


class ProductInfoAnswer(BaseModel):
    """No `product_info`: PortaBilling has no such product."""

    product_info: ProductInfo | None = None


# --- ESPF: status (us → PortaBilling) and events (PortaBilling → us) ---


class StatusReport(BaseModel):
    """`POST /espf/v1/account/i/<i_account>/status`."""

    model_config = ConfigDict(extra="forbid")

    status: ProvisioningStatus
    group: str = Field(min_length=1)
    message: str = Field(max_length=STATUS_MESSAGE_MAX)


class EventType(StrEnum):
    """The ESPF event types this release names (PortaBilling MR100 and later: its ESPF event types,
    and the webhook groups `Subscriber/*` and `Customer/*`); PortaBilling's docs list more, and a type
    not named here is received all the same. The `Customer/*` types are about a customer, the others
    about an account."""

    ACCOUNT_NEW = "Account/New"
    ACCOUNT_SERVICE_PASSWORD_CHANGED = "Account/ServicePassword/Changed"
    ACCOUNT_PASSWORD_CHANGED = "Account/Password/Changed"
    ACCOUNT_ID_CHANGED = "Account/Id/Changed"
    # PortaBilling's "Events that ESPF handlers support" table spells it so: both are taken.
    ACCOUNT_ID_CHANGED_AS_LISTED = "Account/ID/Changed"
    ACCOUNT_BLOCKED = "Account/Blocked"
    ACCOUNT_UNBLOCKED = "Account/Unblocked"
    ACCOUNT_CLOSED = "Account/Status/Closed"
    ACCOUNT_CUSTOM_FIELD_CHANGED = "Account/CustomField/Changed"
    ACCOUNT_PRODUCT_CHANGED = "Account/Product/Changed"
    ACCOUNT_MSG_QUOTA_EXCEEDED = "Account/Service/Msg/QuotaExceeded"
    ACCOUNT_ZERO_FUNDS = "Account/ZeroAvailableFunds"
    ACCOUNT_FUNDS_APPEAR = "Account/AvailableFundsAppear"
    ACCOUNT_EXPIRATION_DATE_CHANGED = "Account/ExpirationDate/Changed"
    SUBSCRIBER_CREATED = "Subscriber/Created"
    SUBSCRIBER_UPDATED = "Subscriber/Updated"
    SUBSCRIBER_DELETED = "Subscriber/Deleted"
    CUSTOMER_CREATED = "Customer/Created"
    CUSTOMER_UPDATED = "Customer/Updated"
    CUSTOMER_DELETED = "Customer/Deleted"
    CUSTOMER_CUSTOM_FIELD_CHANGED = "Customer/CustomField/Changed"
    # A customer's block and unblock: its accounts are pushed blocked while it is.
    CUSTOMER_BLOCKED = "Customer/Blocked"
    CUSTOMER_UNBLOCKED = "Customer/Unblocked"


CUSTOMER_EVENT_TYPES = frozenset(t for t in EventType if t.startswith("Customer/"))
ACCOUNT_EVENT_TYPES = frozenset(EventType) - CUSTOMER_EVENT_TYPES
# A customer's status (suspended, its suspension removed, closed, ...): every type under it is the
# customer's, whatever a release names it (MR107 `Suspend`, MR115 `Suspended`).
CUSTOMER_STATUS_PREFIX = "Customer/Status/"
# What PortaBilling emits that changes nothing of what the CMMS is given: an invoice's, a DID's, a
# payment's, a balance's. Answered `ignored` even when they name an account or a customer (a new ESPF
# handler is subscribed to every type). Names from pavlyuts/portabilling's Events.php (release 80).
NOISE_EVENT_PREFIXES = ("Invoice/", "DID/", "PaymentTransaction/", "Connection/", "Accessibility/")
NOISE_EVENT_TYPES = frozenset(
    {
        "Account/BalanceChanged",
        "Customer/BalanceChanged",
        "Customer/AvailableFundsAppear",
        "Customer/ZeroAvailableFunds",
    }
)
# The namespaces whose unnamed types are still taken as "read it again" (a later release may rename one
# this release relies on): an account's (and its subscriber's) and a customer's.
ACCOUNT_NAMESPACES = ("Account/", "Subscriber/")
CUSTOMER_NAMESPACE = "Customer/"

EventScope = Literal["account", "customer", "noise"]


def scope_of(event_type: str) -> tuple[EventScope, bool]:
    """What an event of this type is about, and whether this release names the type: an account's
    (its account is pushed), a customer's (every account of the customer is), or noise (nothing)."""
    if event_type in ACCOUNT_EVENT_TYPES:
        return "account", True
    if event_type in CUSTOMER_EVENT_TYPES or event_type.startswith(CUSTOMER_STATUS_PREFIX):
        return "customer", True
    if event_type in NOISE_EVENT_TYPES or event_type.startswith(NOISE_EVENT_PREFIXES):
        return "noise", True
    if event_type.startswith(ACCOUNT_NAMESPACES):
        return "account", False
    if event_type.startswith(CUSTOMER_NAMESPACE):
        return "customer", False
    return "noise", False


# The longest event type taken: PortaBilling's documentation states none, its types are some 40
# characters at most, and this is what the table of received events holds.
EVENT_TYPE_MAX = 100
# No NUL (U+0000): the event type is stored, and PostgreSQL's text cannot hold one.
_NO_NUL = r"^[^\x00]*$"

_ID_DIGITS = "^[1-9][0-9]{0,17}$"


def _integer_or_digits(value: object) -> object:
    # As the schema says: no `true`, no "1.0" or " 7", which a lax int would take.
    if isinstance(value, bool) or (isinstance(value, str) and not re.fullmatch(_ID_DIGITS, value)):
        raise ValueError("an id is a positive integer, or its digits as a string")
    return value


# PortaBilling's ids are positive integers. Its events carry them as strings (the documentation's
# example) or as integers (its variable tables say int): both are taken; they are sent as strings.
EspfId = Annotated[
    int,
    BeforeValidator(_integer_or_digits),
    Field(ge=1, le=2**63 - 1),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                {"type": "string", "pattern": _ID_DIGITS},
            ]
        }
    ),
    PlainSerializer(str, return_type=str, when_used="json"),
]


class EspfVariables(BaseModel):
    """The variables that say which event this is and what it is about: `i_event` always, an account
    event's `i_account`, a customer event's `i_customer`."""

    model_config = ConfigDict(extra="ignore")  # other variables (an invoice's, a DID's) are not ours

    i_event: EspfId
    i_account: EspfId | None = None
    i_customer: EspfId | None = None


class EspfEvent(BaseModel):
    """What ESPF posts: `{"event_type": "Account/Blocked", "variables": {"i_event": "7", "i_account": "1000889"}}`."""

    event_type: str = Field(min_length=1, max_length=EVENT_TYPE_MAX, pattern=_NO_NUL)
    variables: EspfVariables

    def wire(self) -> dict[str, object]:
        """The JSON body PortaBilling sends: the ids as strings, the variables an event lacks left out."""
        return self.model_dump(mode="json", exclude_none=True)


# Only the latest queued event of these types per entity is delivered ("Receiving provisioning
# events"); `Customer/Status/*` stands for every type under it.
COALESCED_EVENT_TYPES = frozenset(
    {"Account/Service/Msg/QuotaExceeded", "Account/ProductAddon/Changed", "Account/Service/QuotaExceeded"}
)
COALESCED_EVENT_PREFIXES = ("Customer/Status/",)


def is_coalesced(event_type: str) -> bool:
    """Whether PortaBilling keeps only the latest queued event of this type per entity."""
    return event_type in COALESCED_EVENT_TYPES or event_type.startswith(COALESCED_EVENT_PREFIXES)


# What PortaBilling says of an account's messaging ("Messaging service policy attributes", "Send push
# event to AudioCodes CMMS": the messaging service is suspended when the service wallet is empty and
# resumed once it is topped up): the latest of these events about an account decides, while its
# product's messaging service policy pushes events.
MESSAGING_SUSPENDED_BY = frozenset({EventType.ACCOUNT_MSG_QUOTA_EXCEEDED, EventType.ACCOUNT_ZERO_FUNDS})
MESSAGING_RESUMED_BY = frozenset({EventType.ACCOUNT_FUNDS_APPEAR})
MESSAGING_EVENT_TYPES = MESSAGING_SUSPENDED_BY | MESSAGING_RESUMED_BY

_SEGMENT = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<field>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>[^\]]*)\])?")
_TRUE = frozenset({"y", "yes", "true", "1", "on"})
_FALSE = frozenset({"n", "no", "false", "0", "off", ""})


class ShapeNotFound(LookupError):
    """An answer has not the shape an `AttributePath` looks for; the message names the part missing."""


class AttributePath:
    """Where a flag sits in a JSON answer: dot-separated keys, a list's item chosen by one of its fields
    (`service_policies[service=messaging].push_events`). `flag(answer)` is the flag (Y/N, true/false,
    1/0); None when the chosen list holds no such item (the product has no such policy); ShapeNotFound
    when a key is missing or a value is not what the path says."""

    def __init__(self, text: str) -> None:
        self.text = text
        segments = [_SEGMENT.fullmatch(part) for part in text.split(".")]
        self._segments = [segment for segment in segments if segment is not None]
        if not text or len(self._segments) != len(segments):
            raise ValueError(f"{text!r} is not a path such as service_policies[service=messaging].push_events")

    def flag(self, answer: dict[str, Any]) -> bool | None:
        here: Any = answer
        walked: list[str] = []
        for segment in self._segments:
            key, field, value = segment["key"], segment["field"], segment["value"]
            if not isinstance(here, dict) or key not in here:
                raise ShapeNotFound(f"no {'.'.join([*walked, key])!r}")
            here = here[key]
            walked.append(segment[0])
            if field is None:
                continue
            if not isinstance(here, list):
                raise ShapeNotFound(f"{key!r} is not a list")
            chosen = [item for item in here if isinstance(item, dict) and str(item.get(field)) == value]
            if not chosen:
                return None
            here = chosen[0]
        if isinstance(here, bool):
            return here
        if isinstance(here, (int, str)) and str(here).strip().lower() in _TRUE | _FALSE:
            return str(here).strip().lower() in _TRUE
        raise ShapeNotFound(f"{'.'.join(walked)!r} is not a flag (Y/N, true/false, 1/0)")
