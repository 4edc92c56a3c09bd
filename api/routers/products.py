"""Products: what an account is sold as, with its service policies (use case 4)."""

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict
from temporalio.common import WorkflowIDConflictPolicy

from api.auth import Role
from api.deps import ReadSessionDep, SessionDep, SettingsDep, TemporalDep, require
from api.fields import Name, ResourceId
from api.persistence import get_or_404, insert
from api.problems import Problem
from billing.messaging import MESSAGING, push_events
from billing.models import Product
from contracts.search_attributes import OpsState, search_attributes
from contracts.wallets import MessagingRolloutInput, messaging_rollout_workflow_id
from workflows.messaging_rollout import MessagingRolloutWorkflow

router = APIRouter(prefix="/v1/products", tags=["products"], dependencies=[Depends(require(Role.admin))])


class MessagingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    push_events: bool


class ServicePolicies(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messaging: MessagingPolicy | None = None


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: ResourceId
    name: Name
    service_policies: ServicePolicies = ServicePolicies()


class ProductUpdate(BaseModel):
    """Only the fields given change; a service named with `null` loses its policy."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    service_policies: ServicePolicies | None = None


class ProductPublic(BaseModel):
    product_id: str
    name: str
    service_policies: ServicePolicies
    created_at: datetime


@router.post("", status_code=201)
async def create_product(body: ProductCreate, session: SessionDep) -> ProductPublic:
    product = Product(
        product_id=body.product_id,
        name=body.name,
        service_policies=body.service_policies.model_dump(exclude_none=True),
    )
    row = await insert(session, product, "product", body.product_id)
    return ProductPublic.model_validate(row, from_attributes=True)


@router.get("/{product_id}")
async def get_product(product_id: str, session: ReadSessionDep) -> ProductPublic:
    row = await get_or_404(session, Product, product_id, "product")
    return ProductPublic.model_validate(row, from_attributes=True)


class ProductUpdated(ProductPublic):
    # The rollout telling the product's accounts to push their messaging state, when one was started.
    workflow_id: str | None = None


@router.patch("/{product_id}")
async def update_product(
    product_id: str, body: ProductUpdate, session: SessionDep, temporal: TemporalDep, settings: SettingsDep
) -> ProductUpdated:
    """Rename a product or change its service policies; turning messaging's `push_events` on brings every
    account of the product into line in the CMMS (suspended unless its wallet is usable)."""
    row = await session.get(Product, product_id, with_for_update=True)
    if row is None:
        raise Problem(404, f"product {product_id!r} does not exist")
    changes = body.service_policies.model_dump(exclude_unset=True) if body.service_policies else {}
    if body.name is not None:
        row.name = body.name
    if changes:
        merged = row.service_policies | changes
        row.service_policies = {service: policy for service, policy in merged.items() if policy is not None}
    session.add(row)
    await session.commit()
    view = ProductPublic.model_validate(row, from_attributes=True)
    workflow_id = None
    # Started whenever the request turns push_events on, even where it already was: a retry after a failed
    # start still brings the accounts into line (an extra push changes nothing in the CMMS). Turned off,
    # billing stops driving messaging and the CMMS keeps what it holds: nothing to push.
    if MESSAGING in changes and push_events(row.service_policies):
        workflow_id = messaging_rollout_workflow_id(product_id)
        await temporal.start_workflow(
            MessagingRolloutWorkflow.run,
            MessagingRolloutInput(product_id=product_id),
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
            search_attributes=search_attributes(state=OpsState.rolling_out),
            # A newer change starts again from the first account rather than racing the older rollout.
            id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
        )
    return ProductUpdated(**view.model_dump(), workflow_id=workflow_id)
