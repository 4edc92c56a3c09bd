"""Billing tables. One row type a resource; secrets never leave through the API's views."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import JSON, BigInteger, Column, DateTime, Dialect, Index, String, TypeDecorator, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from billing.encrypted import EncryptedString
from contracts.signups import SignupState


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


E = TypeVar("E", bound=StrEnum)


class EnumText(TypeDecorator[E]):
    """A StrEnum stored as plain text (portable, no native enum to migrate), read back as the enum."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__()
        self._enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self._enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self._enum(value)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


def _enum(default: StrEnum) -> Any:
    return Field(default=default, sa_column=Column(EnumText(type(default)), nullable=False))


class AccountStatus(StrEnum):
    pending = "pending"  # created by an order, not yet confirmed by the CMMS
    active = "active"
    blocked = "blocked"
    terminated = "terminated"


class PushStatus(StrEnum):
    """Where the account stands with the CMMS after its last push, in the terms of PortaBilling's
    `ProvisioningStatus` (told to it beside PortaBilling). Stored and shown as `provisioning_state`; not
    the `ProvisioningState` search attribute, which says where a workflow stands."""

    in_progress = "in_progress"
    retry = "retry"  # the CMMS is unavailable; the workflow keeps trying
    ok = "ok"
    failed = "failed"


class OrderStatus(StrEnum):
    accepted = "accepted"
    provisioning = "provisioning"
    completed = "completed"
    failed = "failed"


class MessagingState(StrEnum):
    active = "active"
    suspended = "suspended"


class Reseller(SQLModel, table=True):
    reseller_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    domain: str = Field(max_length=253)
    created_at: datetime = _created()


class CustomFieldDefinition(SQLModel, table=True):
    """A custom field customers may carry where their class enables it (`profileName`, `domain`…)."""

    __tablename__ = "custom_field_definition"

    name: str = Field(primary_key=True, max_length=64)
    field_type: str = Field(default="text", max_length=16)  # "text" or "enum"
    allowed_values: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    description: str = Field(default="", max_length=500)


class CustomerClass(SQLModel, table=True):
    __tablename__ = "customer_class"

    customer_class_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    custom_fields: list[str] = _json(list)  # names of the enabled custom fields
    created_at: datetime = _created()


class Customer(SQLModel, table=True):
    customer_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    customer_class_id: str = Field(foreign_key="customer_class.customer_class_id", index=True)
    reseller_id: str | None = Field(default=None, foreign_key="reseller.reseller_id", index=True)
    custom_fields: dict[str, str] = _json(dict)
    revision: int = 1  # raised on every change, so a rollout knows which values are newest
    created_at: datetime = _created()
    updated_at: datetime = _created()
    # Set when the customer is deleted: kept (its orders and accounts refer to it), no longer listed or used.
    deleted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class Product(SQLModel, table=True):
    product_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    # {"messaging": {"push_events": bool, "initial_wallet": {"amount": int, "valid_days": int | None}}}
    service_policies: dict[str, Any] = _json(dict)
    created_at: datetime = _created()


# Two live accounts never share an IMEI, and two orders in flight never provision one: the database
# holds it, whatever requests race (a terminated account's IMEI stays on record, free for another).
LIVE_ACCOUNT_IMEI = "ix_account_live_imei"
LIVE_ACCOUNT = "status <> 'terminated'"
OPEN_ORDER_IMEI = "ix_orders_open_imei"
OPEN_ORDER = "status IN ('accepted', 'provisioning')"


def _unique_where(name: str, column: str, condition: str) -> Index:
    """A partial unique index, the same on PostgreSQL and SQLite."""
    return Index(name, column, unique=True, postgresql_where=text(condition), sqlite_where=text(condition))


class Account(SQLModel, table=True):
    # The lists' order (services.pagination): a page is read off the index, not sorted from the table.
    __table_args__ = (
        _unique_where(LIVE_ACCOUNT_IMEI, "imei", LIVE_ACCOUNT),
        Index("ix_account_created", "created_at", "account_id"),
    )

    account_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(foreign_key="customer.customer_id", index=True)
    product_id: str = Field(foreign_key="product.product_id", index=True)
    imei: str | None = Field(default=None, max_length=15, index=True)
    # Kept for provisioning, encrypted at rest (billing.encrypted); no API view carries it.
    sip_password: str = Field(sa_column=Column(EncryptedString("account.sip_password", 512), nullable=False))
    status: AccountStatus = _enum(AccountStatus.pending)
    provisioning_state: PushStatus = _enum(PushStatus.in_progress)
    last_error: str | None = Field(default=None, max_length=1000)
    cmms_version: int | None = None
    # Messaging as the CMMS last confirmed it while billing drove it (the product's policy); None: billing
    # does not drive it (never has, or handed it back to the CMMS when the policy was turned off).
    messaging_state: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    # Stored and shown, but never used for the messaging push decision (the product's policy is).
    service_policies: dict[str, Any] = _json(dict)
    created_by: str = Field(max_length=100)  # what created it: "order:<id>" or "signup:<id>"
    revision: int = 1  # raised on every change that the CMMS must see
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_status", "status"),
        Index("ix_orders_created", "created_at", "order_id"),  # the lists' order
        Index("ix_orders_key_name_created", "key_name", "created_at", "order_id"),  # a named key's list
        _unique_where(OPEN_ORDER_IMEI, "imei", OPEN_ORDER),
    )

    order_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(foreign_key="customer.customer_id", index=True)
    product_id: str = Field(foreign_key="product.product_id")
    account_id: str = Field(max_length=64, index=True)
    imei: str = Field(max_length=15, index=True)
    # A password the website chose: held only until the account takes it, then cleared.
    requested_password: str | None = Field(
        default=None, sa_column=Column(EncryptedString("orders.requested_password", 512), nullable=True)
    )
    fingerprint: str = Field(max_length=64)  # keyed hash of the request, to tell a repeat from a conflict
    # A messaging wallet opened by operations before the order created its account ({balance, expires_at}):
    # held here and opened with the account.
    held_wallet: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))
    status: OrderStatus = _enum(OrderStatus.accepted)
    error: str | None = Field(default=None, max_length=1000)
    workflow_id: str = Field(max_length=200)
    # The name of the API key that sent it (`name@key:website`): a named website key sees only its own
    # orders. None: sent by an unnamed key, or before keys had names; admin and unnamed keys see those.
    key_name: str | None = Field(default=None, max_length=64)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Wallet(SQLModel, table=True):
    """A service wallet: `balance` is the sum of its live lots' units, `expires_at` the latest of their
    expiries (None: some live units never expire; after the last live lot is gone, the expiry it had)."""

    account_id: str = Field(foreign_key="account.account_id", primary_key=True)
    service: str = Field(primary_key=True, max_length=32)
    balance: int = 0
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    created_at: datetime = _created()
    updated_at: datetime = _created()


class WalletLot(SQLModel, table=True):
    """The units of one top-up still unspent, with that top-up's own expiry (None: never).

    Only live lots are kept: a lot is deleted when its last unit is charged or when it expires (the ledger
    then says how many units expired)."""

    __tablename__ = "wallet_lot"
    __table_args__ = (Index("ix_wallet_lot_wallet", "account_id", "service"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.account_id")
    service: str = Field(max_length=32)
    remaining: int
    # Indexed: the wake sweep asks for the accounts whose lots expire soon.
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), index=True))
    created_at: datetime = _created()


class WalletMovement(SQLModel, table=True):
    """The ledger: every top-up, charge and expiry (top-ups and charges applied once per idempotency key).

    `amount` is the units moved (positive); `created_at` is when it happened (for an expiry: the moment the
    units expired); `expires_at` is the lifetime of a top-up's or an expiry's units."""

    __tablename__ = "wallet_movement"
    __table_args__ = (UniqueConstraint("account_id", "service", "idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.account_id", index=True)
    service: str = Field(max_length=32)
    kind: str = Field(max_length=16)  # "top_up", "charge", "expiry"
    amount: int
    balance_after: int
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    idempotency_key: str | None = Field(default=None, max_length=200)
    # A hash of the request that carried the key: the same key with another request is refused.
    fingerprint: str | None = Field(default=None, max_length=64)
    created_at: datetime = _created()


class Signup(SQLModel, table=True):
    __table_args__ = (Index("ix_signup_created", "created_at", "signup_id"),)  # the lists' order

    signup_id: str = Field(primary_key=True, max_length=64)
    phone_number: str = Field(max_length=16, index=True)  # E.164 with '+'
    status: SignupState = _enum(SignupState.pending)
    client_id: str | None = Field(default=None, max_length=200)
    account_id: str | None = Field(default=None, max_length=64)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # What verified the signup, as a keyed hash: the code's HMAC (billing verifies) or the password's
    # (the CMMS confirms). A repeat of the same call is told from another by it.
    secret_hmac: str | None = Field(default=None, max_length=64)
    # The CMMS's password for the account (the CMMS confirms), held until the account takes it.
    requested_password: str | None = Field(
        default=None, sa_column=Column(EncryptedString("signup.requested_password", 512), nullable=True)
    )
    # The account's revision once this signup set its password: a repeated verify answers the
    # credentials only while they are still the ones this signup issued.
    account_revision: int | None = None
    created_at: datetime = _created()
    updated_at: datetime = _created()


class OutboxKind(StrEnum):
    """Which workflow a committed change must reach (the record's `target` names the object)."""

    order = "order"  # start the order's workflow
    account = "account"  # signal (with start) the account's workflow: push its current state
    customer = "customer"  # signal (with start) the customer's rollout with `revision`
    product = "product"  # (re)start the product's messaging rollout
    bulk_import = "import"  # start the import's workflow (`target` is the import id)


class OutboxRecord(SQLModel, table=True):
    """What Temporal must learn of a change, written in the change's own transaction (services.outbox).

    `available_at` is when a relay may next take the record: the process that wrote it has it until
    then, and a delivery in progress pushes it on (a lease), so two API processes do not both deliver
    it while each is still trying. Delivered records are deleted.
    """

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    kind: OutboxKind = Field(sa_column=Column(EnumText(OutboxKind), nullable=False))
    target: str = Field(max_length=64)
    # 64 bits: beside PortaBilling a customer's revision is the number of its latest ESPF event.
    revision: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    attempts: int = 0
    available_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    last_error: str | None = Field(default=None, max_length=200)
    created_at: datetime = _created()


class SignupSend(SQLModel, table=True):
    """One code SMS of a signup, claimed before it goes out: a retried send finds it and texts nothing."""

    __tablename__ = "signup_send"

    signup_id: str = Field(primary_key=True, max_length=64)
    seq: int = Field(primary_key=True)  # the signup's send number, 1 for its first code
    code_hmac: str = Field(max_length=64)
    # sending: claimed, and perhaps gone out (never sent again); sent; failed: surely not sent.
    state: str = Field(max_length=16)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class RateLimitHit(SQLModel, table=True):
    """One counted request of a sliding-window rate limit shared by every API process (services.rate_limit)."""

    __tablename__ = "rate_limit_hit"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, index=True)
    at: float  # seconds since the epoch: every process's clock, not one process's monotonic clock
    # When this hit leaves its own window: the clean-up removes only hits past theirs.
    expires_at: float = Field(index=True)


class SmsStatus(StrEnum):
    """What became of one SMS, from the gateway's delivery reports."""

    queued = "queued"  # handed to the gateway; no report yet
    accepted = "accepted"  # the SMSC took it
    rejected = "rejected"  # the gateway or the SMSC refused it
    delivered = "delivered"  # the phone has it
    undelivered = "undelivered"  # the SMSC gave up reaching the phone


class SmsMessage(SQLModel, table=True):
    """One code SMS of a signup. Its delivery reports name it by a per-message token, kept as a hash."""

    __tablename__ = "sms_message"

    report_token_hash: str = Field(primary_key=True, max_length=64)  # SHA-256 of the token, hex
    signup_id: str = Field(max_length=64, index=True)
    status: SmsStatus = _enum(SmsStatus.queued)
    error: str | None = Field(default=None, max_length=300)  # why the gateway refused it, in its words
    sent_at: datetime = _created()
    updated_at: datetime = _created()


class AuditEntry(SQLModel, table=True):
    """One edit of an object: what changed, who made it (the API key's label) and when; never a secret."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_object", "object_type", "object_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    object_type: str = Field(max_length=32)  # "customer", "reseller", "product", "customer_class", "account"
    object_id: str = Field(max_length=64)
    action: str = Field(max_length=16)  # "create", "update", "delete"
    actor: str = Field(max_length=100)
    changes: dict[str, Any] = _json(dict)  # field -> {"from": old, "to": new}; a secret as "(changed)"
    created_at: datetime = _created()


class PortaBillingEvent(SQLModel, table=True):
    """One ESPF event PortaBilling delivered (`BILLING_SOURCE=portabilling`), kept by its `i_event` so that
    a repeat (PortaBilling delivers at least once) is answered without acting twice."""

    __tablename__ = "portabilling_event"

    i_event: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    event_type: str = Field(max_length=100)
    i_account: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    i_customer: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    known: bool = True  # False: a type this release does not name; acted on as "read the entity again"
    received_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True))


class PortaBillingAccount(SQLModel, table=True):
    """A PortaBilling account as this service last pushed it: the key the CMMS holds it under (its `id`,
    which PortaBilling lets an administrator change) and how the last push went, also told to
    PortaBilling. Written only when one of these changes, not on every push."""

    __tablename__ = "portabilling_account"

    i_account: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    cmms_account_id: str | None = Field(default=None, max_length=64)
    provisioning_state: PushStatus = _enum(PushStatus.in_progress)
    last_error: str | None = Field(default=None, max_length=1000)
    # As the CMMS last confirmed it while the product's policy drives messaging; None: not driven.
    messaging_state: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    updated_at: datetime = _created()


class ReconciliationOrphan(SQLModel, table=True):
    """A CMMS record with no account that a reconciliation found, kept here rather than in the run's
    history (a wiped billing makes every record one): until the run deletes it, or, when the run was
    held, until an operator confirms it (or a later held run takes its place)."""

    __tablename__ = "reconciliation_orphan"

    run_id: str = Field(primary_key=True, max_length=128)  # the reconciliation's workflow id
    account_id: str = Field(primary_key=True, max_length=64)
    held: bool = False  # its run was held: kept for a confirmation
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True))


class Import(SQLModel, table=True):
    """A bulk import (services.imports), stored in the transaction that creates its accounts. Its id is a
    keyed hash of the file, so the same file again finds this row and its answer."""

    __tablename__ = "imports"

    import_id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(max_length=100)
    total: int  # rows in the file
    accepted: int  # rows whose accounts were created
    rejected: list[dict[str, Any]] = _json(list)  # [{line, reason}], the reasons with no secret in them
    created_at: datetime = _created()


class ImportRow(SQLModel, table=True):
    """An accepted row of an import: the account it created, and whether the CMMS held it already."""

    __tablename__ = "import_rows"

    import_id: str = Field(foreign_key="imports.import_id", primary_key=True, max_length=64)
    account_id: str = Field(primary_key=True, max_length=64)
    line: int
    in_cmms: bool = False
