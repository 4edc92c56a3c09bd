"""Products: what an account is sold as, with its service policies (messaging by wallet).

Turning a product's messaging `push_events` on or off is committed with the outbox record that starts the
product's messaging rollout: every account of the product pushes its current state, which brings its
messaging into line (on), or hands messaging back to the CMMS, enabled, once (off; see billing.messaging).
"""

from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from billing.db import snapshot
from billing.messaging import MESSAGING, push_events
from billing.models import OutboxKind, Product
from contracts.wallets import messaging_rollout_workflow_id
from services import audit
from services.errors import NotFound
from services.outbox import Outbox
from services.pagination import KeysetPage, PageRequest, page
from services.rows import adding, read


@dataclass(frozen=True)
class ProductChanged:
    product: Product
    workflow_id: str | None  # the messaging rollout, when the change started one


async def create_product(outbox: Outbox, product: Product, actor: str) -> Product:
    async with adding(outbox.sessions, "product", product.product_id) as session:
        session.add(product)
        audit.record(session, actor, "product", product.product_id, "create", audit.created(_audited(product)))
    return product


async def get_product(outbox: Outbox, product_id: str) -> Product:
    return await read(outbox.sessions, Product, product_id, "product")


async def list_products(outbox: Outbox, request: PageRequest) -> KeysetPage[Product]:
    async with snapshot(outbox.sessions) as session:
        return await page(session, select(Product), Product, "product_id", "products", request)


async def change_product(
    outbox: Outbox, product_id: str, name: str | None, policies: dict[str, Any] | None, actor: str
) -> ProductChanged:
    """Rename a product and/or merge `policies` into its service policies (a service, or a setting of one, set
    to None loses it; settings not named are kept)."""
    async with outbox.transaction() as tx:
        product = await tx.session.get(Product, product_id, with_for_update=True)
        if product is None:
            raise NotFound(f"product {product_id!r} does not exist")
        before = _audited(product)
        was_driven = push_events(product.service_policies)
        if name is not None:
            product.name = name
        if policies:
            product.service_policies = _merged(product.service_policies, policies)
        tx.session.add(product)
        audit.record(tx.session, actor, "product", product_id, "update", audit.diff(before, _audited(product)))
        workflow_id = None
        # Whenever the request turns push_events on, even where it already was: asking again brings the
        # accounts into line again (an extra push changes nothing in the CMMS). Turned off, the accounts
        # billing suspended must not stay suspended for good: each is pushed once with messaging enabled,
        # and from then on the CMMS keeps what it holds.
        driven = push_events(product.service_policies)
        if policies and MESSAGING in policies and (driven or was_driven):
            tx.tell(OutboxKind.product, product_id)
            workflow_id = messaging_rollout_workflow_id(product_id)
    return ProductChanged(product, workflow_id)


def _audited(product: Product) -> dict[str, Any]:
    return {"name": product.name, "service_policies": dict(product.service_policies)}


def _merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for service, change in changes.items():
        if change is None:
            merged.pop(service, None)
            continue
        kept = merged.get(service)
        combined = (kept if isinstance(kept, dict) else {}) | change
        merged[service] = {name: value for name, value in combined.items() if value is not None}
    return merged
