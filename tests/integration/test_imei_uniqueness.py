"""The database itself holds that an IMEI has one live account and one order in flight (migration
0004), and the service tells that rule's violation from any other, on SQLite and PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.exc import IntegrityError

from billing.db import SessionMaker, make_engine, make_sessionmaker
from billing.models import Account, AccountStatus, Customer, CustomerClass, Order, OrderStatus, Product
from billing.uniqueness import imei_taken
from tests.support.catalog import new_id, random_imei, seed_catalog
from tests.support.messaging import billing_only_account
from tests.support.stack import Stack


@pytest.fixture(scope="module")
async def sessions(billing_database: str) -> AsyncIterator[SessionMaker]:
    engine = make_engine(billing_database)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
async def catalog(sessions: SessionMaker) -> tuple[str, str]:
    class_id, customer_id, product_id = new_id("class"), new_id("cust"), new_id("prod")
    async with sessions() as session:
        session.add(CustomerClass(customer_class_id=class_id, name="C"))
        await session.flush()
        session.add(Customer(customer_id=customer_id, name="Ada", customer_class_id=class_id))
        session.add(Product(product_id=product_id, name="P"))
        await session.commit()
    return customer_id, product_id


def account(catalog: tuple[str, str], imei: str, status: AccountStatus = AccountStatus.active) -> Account:
    customer_id, product_id = catalog
    return Account(
        account_id=new_id("acct"),
        customer_id=customer_id,
        product_id=product_id,
        imei=imei,
        sip_password="Never-Shown-1",
        status=status,
        created_by="test",
    )


def order(catalog: tuple[str, str], imei: str, status: OrderStatus) -> Order:
    customer_id, product_id = catalog
    order_id = new_id("ord")
    return Order(
        order_id=order_id,
        customer_id=customer_id,
        product_id=product_id,
        account_id=new_id("acct"),
        imei=imei,
        fingerprint="f" * 64,
        status=status,
        workflow_id=f"order-{order_id}",
    )


async def add(sessions: SessionMaker, *rows: Account | Order) -> IntegrityError | None:
    """Commit the rows one by one, as separate requests would; the error of the first one refused, if any."""
    for row in rows:
        async with sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as err:
                return err
    return None


async def test_two_live_accounts_never_share_an_imei(sessions: SessionMaker, catalog: tuple[str, str]) -> None:
    imei = random_imei()
    err = await add(sessions, account(catalog, imei), account(catalog, imei, AccountStatus.blocked))
    assert err is not None and imei_taken(err)
    # A terminated account's IMEI is free for another: one live account, several terminated.
    reused = random_imei()
    terminated = [account(catalog, reused, AccountStatus.terminated) for _ in range(2)]
    assert await add(sessions, *terminated, account(catalog, reused, AccountStatus.pending)) is None


async def test_two_orders_in_flight_never_share_an_imei(sessions: SessionMaker, catalog: tuple[str, str]) -> None:
    imei = random_imei()
    in_flight = [order(catalog, imei, OrderStatus.accepted), order(catalog, imei, OrderStatus.provisioning)]
    err = await add(sessions, *in_flight)
    assert err is not None and imei_taken(err)
    again = random_imei()
    done = [order(catalog, again, OrderStatus.failed), order(catalog, again, OrderStatus.completed)]
    assert await add(sessions, *done, order(catalog, again, OrderStatus.accepted)) is None


async def test_another_broken_rule_is_not_taken_for_an_imei(sessions: SessionMaker, catalog: tuple[str, str]) -> None:
    first = account(catalog, random_imei())
    twin = account(catalog, random_imei())
    twin.account_id = first.account_id
    err = await add(sessions, first, twin)
    assert err is not None and not imei_taken(err)


async def test_concurrent_imei_changes_give_the_imei_to_one_account(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    accounts = [await billing_only_account(stack.sessions, catalog) for _ in range(2)]
    for _ in range(10):
        change = {"imei": random_imei()}
        answers = await asyncio.gather(
            *(stack.api.patch(f"/v1/accounts/{a}", json=change, headers=stack.admin) for a in accounts)
        )
        assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 409)
        assert refused.headers["content-type"].startswith("application/problem+json")
