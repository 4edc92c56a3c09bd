"""Build billing data through the API, as operations staff would."""

import secrets
from dataclasses import dataclass
from typing import Any

from stdnum import luhn

from tests.support.stack import Stack


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


def random_imei() -> str:
    """A valid IMEI: 14 random digits and the Luhn check digit."""
    body = "35" + "".join(secrets.choice("0123456789") for _ in range(12))
    return body + luhn.calc_check_digit(body)


@dataclass
class Catalog:
    customer_id: str
    product_id: str


async def create(stack: Stack, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await stack.api.post(path, json=body, headers=stack.admin)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def seed_catalog(
    stack: Stack, *, custom_fields: dict[str, str] | None = None, reseller_domain: str | None = None
) -> Catalog:
    """A customer class enabling both custom fields, a customer (optionally under a reseller), a product."""
    class_id, customer_id, product_id = new_id("class"), new_id("cust"), new_id("prod")
    await create(
        stack,
        "/v1/customer-classes",
        {"customer_class_id": class_id, "name": "Retail", "custom_fields": ["profileName", "domain"]},
    )
    customer: dict[str, Any] = {"customer_id": customer_id, "name": "Ada", "customer_class_id": class_id}
    if reseller_domain:
        reseller_id = new_id("res")
        await create(stack, "/v1/resellers", {"reseller_id": reseller_id, "name": "R", "domain": reseller_domain})
        customer["reseller_id"] = reseller_id
    if custom_fields:
        customer["custom_fields"] = custom_fields
    await create(stack, "/v1/customers", customer)
    await create(stack, "/v1/products", {"product_id": product_id, "name": "Mobile S"})
    return Catalog(customer_id=customer_id, product_id=product_id)


def order_body(catalog: Catalog, **account: Any) -> dict[str, Any]:
    return {
        "order_id": new_id("ord"),
        "customer_id": catalog.customer_id,
        "product_id": catalog.product_id,
        "account": {"imei": random_imei()} | account,
    }
