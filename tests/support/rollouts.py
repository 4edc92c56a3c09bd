"""Helpers for customized-provisioning tests: accounts seeded straight into billing, rollouts awaited."""

from typing import Any

import httpx

from billing.db import SessionMaker, transaction
from billing.models import Account, AccountStatus, PushStatus
from tests.support.catalog import new_id, random_imei
from tests.support.polling import eventually
from tests.support.stack import ADMIN_KEY

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def seed_accounts(
    sessions: SessionMaker,
    customer_id: str,
    product_id: str,
    count: int,
    *,
    status: AccountStatus = AccountStatus.active,
) -> list[str]:
    """`count` accounts of the customer, written to billing directly (as if their orders had completed)."""
    ids = [new_id("acct") for _ in range(count)]
    async with transaction(sessions) as session:
        for account_id in ids:
            session.add(
                Account(
                    account_id=account_id,
                    customer_id=customer_id,
                    product_id=product_id,
                    imei=random_imei(),
                    sip_password=f"pw-{account_id}",
                    status=status,
                    provisioning_state=PushStatus.ok,
                    created_by="test",
                )
            )
    return sorted(ids)


async def patch_customer(api: httpx.AsyncClient, customer_id: str, fields: dict[str, str | None]) -> dict[str, Any]:
    response = await api.patch(f"/v1/customers/{customer_id}", json={"custom_fields": fields}, headers=ADMIN)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


async def rollout(api: httpx.AsyncClient, customer_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/customers/{customer_id}/rollout", headers=ADMIN)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def rollout_when(
    api: httpx.AsyncClient,
    customer_id: str,
    done: int | None = None,
    *,
    revision: int | None = None,
    within: float = 60,
) -> dict[str, Any]:
    """Poll the rollout's progress until it has `done` accounts (or, by default, has completed); a rollout
    not started yet (its start follows the change's answer) is waited for."""

    async def progress() -> dict[str, Any] | None:
        response = await api.get(f"/v1/customers/{customer_id}/rollout", headers=ADMIN)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def there(progress: dict[str, Any] | None) -> bool:
        if progress is None or (revision is not None and progress["revision"] < revision):
            return False
        if done is None:
            return bool(progress["status"] == "completed")
        return bool(progress["done"] + progress["failed"] >= done)

    reached = await eventually(progress, there, within=within, what="the rollout's progress")
    assert reached is not None
    return reached
