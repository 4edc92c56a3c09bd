"""Resellers, customer classes and customers: who buys accounts, and the custom fields they carry.

Changing a customer's custom fields re-provisions all of its accounts (use case 3): the change and
its raised revision are committed with the outbox record that signals the customer's rollout.
"""

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from billing.custom_fields import definitions, value_errors
from billing.models import Customer, CustomerClass, OutboxKind, Reseller, utcnow
from billing.provisioning import PROFILE_FIELD
from contracts.rollouts import RolloutProgress, rollout_workflow_id
from core.settings import Settings
from services.errors import Invalid, NotFound, unknown_reference
from services.outbox import Outbox
from services.rows import adding, insert, read
from workflows.customer_rollout import CustomerRolloutWorkflow


@dataclass(frozen=True)
class CustomerChanged:
    workflow_id: str
    customer_id: str
    revision: int


async def create_reseller(outbox: Outbox, reseller: Reseller) -> Reseller:
    return await insert(outbox.sessions, reseller, "reseller", reseller.reseller_id)


async def get_reseller(outbox: Outbox, reseller_id: str) -> Reseller:
    return await read(outbox.sessions, Reseller, reseller_id, "reseller")


async def create_customer_class(outbox: Outbox, customer_class: CustomerClass) -> CustomerClass:
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
    return customer_class


async def get_customer_class(outbox: Outbox, customer_class_id: str) -> CustomerClass:
    return await read(outbox.sessions, CustomerClass, customer_class_id, "customer class")


async def create_customer(outbox: Outbox, settings: Settings, customer: Customer) -> Customer:
    async with adding(outbox.sessions, "customer", customer.customer_id) as session:
        customer_class = await session.get(CustomerClass, customer.customer_class_id)
        if customer_class is None:
            raise unknown_reference("customer_class_id", "customer class", customer.customer_class_id)
        if customer.reseller_id is not None and await session.get(Reseller, customer.reseller_id) is None:
            raise unknown_reference("reseller_id", "reseller", customer.reseller_id)
        await _check_custom_fields(session, settings, customer_class, customer.custom_fields)
        session.add(customer)
    return customer


async def get_customer(outbox: Outbox, customer_id: str) -> Customer:
    return await read(outbox.sessions, Customer, customer_id, "customer")


async def change_custom_fields(
    outbox: Outbox, settings: Settings, customer_id: str, patch: dict[str, str | None]
) -> CustomerChanged:
    """Merge `patch` into the customer's custom fields (a value sets, None removes), then re-provision every
    account of the customer (also when nothing changed: a way to re-run a rollout)."""
    async with outbox.transaction() as tx:
        customer = await tx.session.get(Customer, customer_id, with_for_update=True)
        if customer is None:
            raise NotFound(f"customer {customer_id!r} does not exist")
        customer_class = await tx.session.get_one(CustomerClass, customer.customer_class_id)
        values = {name: value for name, value in patch.items() if value is not None}
        await _check_custom_fields(tx.session, settings, customer_class, values)
        kept = {name: value for name, value in customer.custom_fields.items() if name not in patch}
        customer.custom_fields = kept | values  # a new dict: the JSON column sees the change
        customer.revision += 1
        customer.updated_at = utcnow()
        tx.session.add(customer)
        tx.tell(OutboxKind.customer, customer_id, customer.revision)
    return CustomerChanged(rollout_workflow_id(customer_id), customer_id, customer.revision)


async def rollout_progress(outbox: Outbox, temporal: Client, customer_id: str) -> RolloutProgress:
    """The customer's latest rollout, running or finished."""
    await get_customer(outbox, customer_id)
    handle = temporal.get_workflow_handle_for(CustomerRolloutWorkflow.run, rollout_workflow_id(customer_id))
    try:
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.COMPLETED:
            return await handle.result()  # no worker needed to read a finished one
        return await handle.query(CustomerRolloutWorkflow.progress)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"customer {customer_id!r} has had no rollout") from None
        raise


async def _check_custom_fields(
    session: AsyncSession, settings: Settings, customer_class: CustomerClass, values: dict[str, str]
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
