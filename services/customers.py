"""Resellers, customer classes and customers: who buys accounts, and the custom fields they carry.

A change that alters what a customer's accounts are provisioned with (its custom fields, its class's
fields, its reseller, its reseller's domain) re-provisions all of its accounts (customized provisioning): the
change and the customer's raised revision are committed with the outbox record that signals the
customer's rollout. Every edit is recorded in the audit trail in the same transaction.
"""

from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from billing.custom_fields import definitions, value_errors
from billing.db import FOR_CHANGE, snapshot
from billing.models import (
    Account,
    AccountStatus,
    Customer,
    CustomerClass,
    Order,
    OrderStatus,
    OutboxKind,
    Reseller,
    utcnow,
)
from billing.provisioning import DOMAIN_FIELD, PROFILE_FIELD, EffectiveProfile, effective_profile
from contracts.rollouts import RolloutProgress, rollout_workflow_id
from contracts.workflows import ROLLOUT_PROGRESS
from core import gateway
from core.settings import ProvisioningSettings
from services import audit
from services.errors import Conflict, Invalid, NotFound, unknown_reference
from services.outbox import Outbox, Tx
from services.pagination import KeysetPage, PageRequest, page
from services.rows import adding, read


@dataclass(frozen=True)
class RolloutStarted:
    workflow_id: str
    customer_id: str
    revision: int


@dataclass(frozen=True)
class CustomerPatch:
    """What may change on a customer; None leaves a field as it is. `custom_fields` is a merge patch
    (a value sets, None removes); `reseller_id` applies when `reseller_set` (None then: no reseller)."""

    name: str | None = None
    customer_class_id: str | None = None
    reseller_id: str | None = None
    reseller_set: bool = False
    custom_fields: dict[str, str | None] | None = None


@dataclass(frozen=True)
class CustomerChanged:
    customer: Customer
    rollout: RolloutStarted | None  # None: the change alters nothing the accounts are provisioned with


@dataclass(frozen=True)
class ResellerChanged:
    reseller: Reseller
    customers: list[str]  # those whose accounts follow (their rollouts were told)


@dataclass(frozen=True)
class CustomerFilter:
    customer_class_id: str | None = None
    reseller_id: str | None = None


async def create_reseller(outbox: Outbox, reseller: Reseller, actor: str) -> Reseller:
    async with adding(outbox.sessions, "reseller", reseller.reseller_id) as session:
        session.add(reseller)
        audit.record(session, actor, "reseller", reseller.reseller_id, "create", audit.created(_reseller(reseller)))
    return reseller


async def get_reseller(outbox: Outbox, reseller_id: str) -> Reseller:
    return await read(outbox.sessions, Reseller, reseller_id, "reseller")


async def list_resellers(outbox: Outbox, request: PageRequest) -> KeysetPage[Reseller]:
    async with snapshot(outbox.sessions) as session:
        return await page(session, select(Reseller), Reseller, "reseller_id", "resellers", request)


async def change_reseller(
    outbox: Outbox, settings: ProvisioningSettings, reseller_id: str, name: str | None, domain: str | None, actor: str
) -> ResellerChanged:
    """Rename a reseller or change its domain. A new domain is the effective domain of every customer of
    the reseller without a domain of its own: each such customer's accounts are re-provisioned."""
    async with outbox.transaction() as tx:
        reseller = await tx.session.get(Reseller, reseller_id, with_for_update=FOR_CHANGE)
        if reseller is None:
            raise NotFound(f"reseller {reseller_id!r} does not exist")
        before = _reseller(reseller)
        reseller.name = name if name is not None else reseller.name
        reseller.domain = domain if domain is not None else reseller.domain
        following: list[str] = []
        if reseller.domain != before["domain"]:
            query = select(Customer).where(Customer.reseller_id == reseller_id, col(Customer.deleted_at).is_(None))
            for customer in (await tx.session.exec(query.with_for_update(key_share=True))).all():
                if DOMAIN_FIELD not in customer.custom_fields:
                    _roll_out(tx, customer)
                    following.append(customer.customer_id)
        tx.session.add(reseller)
        audit.record(tx.session, actor, "reseller", reseller_id, "update", audit.diff(before, _reseller(reseller)))
    return ResellerChanged(reseller, sorted(following))


async def create_customer_class(outbox: Outbox, customer_class: CustomerClass, actor: str) -> CustomerClass:
    """A class enabling custom fields that are defined; the names are kept once each, in order."""
    customer_class.custom_fields = list(dict.fromkeys(customer_class.custom_fields))
    async with adding(outbox.sessions, "customer class", customer_class.customer_class_id) as session:
        known = await definitions(session, customer_class.custom_fields)
        unknown = [name for name in customer_class.custom_fields if name not in known]
        if unknown:
            errors = [
                {"field": "custom_fields", "message": f"no custom field named {name!r}", "type": "unknown_custom_field"}
                for name in unknown
            ]
            raise Invalid("custom_fields names undefined fields", errors)
        session.add(customer_class)
        values = {"name": customer_class.name, "custom_fields": customer_class.custom_fields}
        audit.record(
            session, actor, "customer_class", customer_class.customer_class_id, "create", audit.created(values)
        )
    return customer_class


async def get_customer_class(outbox: Outbox, customer_class_id: str) -> CustomerClass:
    return await read(outbox.sessions, CustomerClass, customer_class_id, "customer class")


async def create_customer(outbox: Outbox, settings: ProvisioningSettings, customer: Customer, actor: str) -> Customer:
    async with adding(outbox.sessions, "customer", customer.customer_id) as session:
        customer_class = await session.get(CustomerClass, customer.customer_class_id)
        if customer_class is None:
            raise unknown_reference("customer_class_id", "customer class", customer.customer_class_id)
        if customer.reseller_id is not None and await session.get(Reseller, customer.reseller_id) is None:
            raise unknown_reference("reseller_id", "reseller", customer.reseller_id)
        await _check_custom_fields(session, settings, customer_class, customer.custom_fields)
        session.add(customer)
        audit.record(session, actor, "customer", customer.customer_id, "create", audit.created(_customer(customer)))
    return customer


async def get_customer(outbox: Outbox, customer_id: str) -> Customer:
    customer = await read(outbox.sessions, Customer, customer_id, "customer")
    if customer.deleted_at is not None:
        raise NotFound(f"customer {customer_id!r} does not exist")
    return customer


async def list_customers(outbox: Outbox, where: CustomerFilter, request: PageRequest) -> KeysetPage[Customer]:
    """Customers oldest first; deleted ones are not listed."""
    query = select(Customer).where(col(Customer.deleted_at).is_(None))
    if where.customer_class_id is not None:
        query = query.where(Customer.customer_class_id == where.customer_class_id)
    if where.reseller_id is not None:
        query = query.where(Customer.reseller_id == where.reseller_id)
    async with snapshot(outbox.sessions) as session:
        return await page(session, query, Customer, "customer_id", "customers", request)


async def change_customer(
    outbox: Outbox, settings: ProvisioningSettings, customer_id: str, patch: CustomerPatch, actor: str
) -> CustomerChanged:
    """Change a customer's name, class, reseller or custom fields. Every account of the customer is
    re-provisioned when the custom fields are patched (also when nothing changed: a way to re-run a
    rollout) or when the effective profile or domain changes (a new reseller, say). A new class must
    enable every custom field the customer keeps."""
    async with outbox.transaction() as tx:
        customer = await _live(tx.session, customer_id)
        before, was = _customer(customer), await _effective(tx.session, settings, customer)
        class_changed = patch.customer_class_id not in (None, customer.customer_class_id)
        customer_class = await tx.session.get(CustomerClass, patch.customer_class_id or customer.customer_class_id)
        if customer_class is None:
            raise unknown_reference("customer_class_id", "customer class", patch.customer_class_id or "")
        new_reseller = patch.reseller_id if patch.reseller_set else None
        if new_reseller is not None and await tx.session.get(Reseller, new_reseller) is None:
            raise unknown_reference("reseller_id", "reseller", new_reseller)
        fields_patch = patch.custom_fields or {}
        values = {name: value for name, value in fields_patch.items() if value is not None}
        kept = {name: value for name, value in customer.custom_fields.items() if name not in fields_patch}
        # The values set now are checked; on a new class, every value the customer keeps is checked too.
        await _check_custom_fields(tx.session, settings, customer_class, kept | values if class_changed else values)
        customer.custom_fields = kept | values  # a new dict: the JSON column sees the change
        customer.customer_class_id = customer_class.customer_class_id
        customer.name = patch.name if patch.name is not None else customer.name
        customer.reseller_id = patch.reseller_id if patch.reseller_set else customer.reseller_id
        customer.updated_at = utcnow()
        rollout = None
        if patch.custom_fields is not None or await _effective(tx.session, settings, customer) != was:
            rollout = _roll_out(tx, customer)
        tx.session.add(customer)
        audit.record(tx.session, actor, "customer", customer_id, "update", audit.diff(before, _customer(customer)))
    return CustomerChanged(customer, rollout)


async def delete_customer(outbox: Outbox, ott_customer_id: str, customer_id: str, actor: str) -> None:
    """Delete a customer that has no live account (nor an order that may make one). It is kept, marked
    deleted, since its orders and terminated accounts refer to it; it is no longer listed, read or used."""
    if customer_id == ott_customer_id:
        raise Conflict(f"customer {customer_id!r} holds the OTT signups' accounts and cannot be deleted")
    async with outbox.transaction() as tx:
        # FOR UPDATE (not the usual key share): an order or account referring to it waits for this commit.
        customer = await _live(tx.session, customer_id, lock=True)
        live = select(Account.account_id).where(
            Account.customer_id == customer_id, col(Account.status) != AccountStatus.terminated
        )
        in_flight = select(Order.order_id).where(
            Order.customer_id == customer_id, col(Order.status).in_([OrderStatus.accepted, OrderStatus.provisioning])
        )
        account = (await tx.session.exec(live.limit(1))).first()
        if account is not None:
            raise Conflict(f"customer {customer_id!r} has live accounts (e.g. {account!r}): terminate them first")
        order = (await tx.session.exec(in_flight.limit(1))).first()
        if order is not None:
            raise Conflict(f"customer {customer_id!r} has order {order!r} in progress")
        customer.deleted_at = utcnow()
        tx.session.add(customer)
        audit.record(tx.session, actor, "customer", customer_id, "delete", {})


async def rollout_progress(outbox: Outbox, temporal: Client, customer_id: str) -> RolloutProgress:
    """The customer's latest rollout, running or finished; a change whose rollout has not started yet
    (its outbox record not delivered, Temporal away) reads as running for that revision."""
    await get_customer(outbox, customer_id)
    waiting = await outbox.newest_revision(OutboxKind.customer, customer_id)
    progress: RolloutProgress | None = None
    try:
        reading = await gateway.progress(temporal, ROLLOUT_PROGRESS, rollout_workflow_id(customer_id))
        progress = reading.value if reading is not None else None  # None: never started
    except (RPCError, RuntimeError):  # a RuntimeError: a lazy client that cannot reach Temporal
        if waiting is None:
            raise
    if waiting is not None and (progress is None or progress.revision < waiting):
        return RolloutProgress(customer_id=customer_id, revision=waiting)
    if progress is None:
        raise NotFound(f"customer {customer_id!r} has had no rollout")
    return progress


async def _check_custom_fields(
    session: AsyncSession, settings: ProvisioningSettings, customer_class: CustomerClass, values: dict[str, str]
) -> None:
    """Refused unless every value is enabled on the class, allowed by its definition, and a profile the CMMS knows."""
    errors = await value_errors(session, customer_class, values)
    profile = values.get(PROFILE_FIELD)
    known = settings.known_profiles
    field = f"custom_fields.{PROFILE_FIELD}"
    if profile is not None and known and profile not in known and not any(e["field"] == field for e in errors):
        message = f"the CMMS knows no profile {profile!r}; known: {', '.join(sorted(known))}"
        errors.append({"field": field, "message": message, "type": "unknown_profile"})
    if errors:
        raise Invalid("custom_fields cannot be set on this customer", errors)


async def _live(session: AsyncSession, customer_id: str, *, lock: bool = False) -> Customer:
    """The customer, not deleted, locked until the change commits."""
    customer = await session.get(Customer, customer_id, with_for_update=True if lock else FOR_CHANGE)
    if customer is None or customer.deleted_at is not None:
        raise NotFound(f"customer {customer_id!r} does not exist")
    return customer


async def _effective(session: AsyncSession, settings: ProvisioningSettings, customer: Customer) -> EffectiveProfile:
    reseller = await session.get(Reseller, customer.reseller_id) if customer.reseller_id else None
    return effective_profile(customer, reseller, settings)


def _roll_out(tx: Tx, customer: Customer) -> RolloutStarted:
    """Raise the customer's revision and tell its rollout, in the change's transaction."""
    customer.revision += 1
    customer.updated_at = utcnow()
    tx.session.add(customer)
    tx.tell(OutboxKind.customer, customer.customer_id, customer.revision)
    return RolloutStarted(rollout_workflow_id(customer.customer_id), customer.customer_id, customer.revision)


def _customer(customer: Customer) -> dict[str, Any]:
    """What the audit trail records of a customer."""
    return {
        "name": customer.name,
        "customer_class_id": customer.customer_class_id,
        "reseller_id": customer.reseller_id,
        "custom_fields": dict(customer.custom_fields),
    }


def _reseller(reseller: Reseller) -> dict[str, Any]:
    return {"name": reseller.name, "domain": reseller.domain}
