"""The service for end-to-end tests: the real API on a real socket and a real worker, on a given
Temporal server, billing database and CMMS simulator."""

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import uvicorn
from starlette.types import ASGIApp
from temporalio.client import Client

from api.app import create_app
from billing.db import SessionMaker, make_sessionmaker, open_billing
from billing.sources.factory import billing_source
from clients.cmms import CmmsClient
from core.settings import Settings
from core.temporal import connect, metrics_runtime
from tests.support.net import free_port
from tests.support.simulator import SimulatorProcess
from worker import build_workers, sip_registrar

WEBSITE_KEY = "test-website-key"
CMMS_KEY = "test-cmms-key"
ADMIN_KEY = "test-admin-key"
# Named website keys (`name@key:website`): each reads only its own orders. "shop" holds two keys, as
# during a rotation; "other-shop" is another website. After the unnamed ones, whose labels name their place.
SHOP = "shop"
SHOP_KEY = "test-shop-key"
SHOP_NEXT_KEY = "test-shop-next-key"
OTHER_SHOP = "other-shop"
OTHER_SHOP_KEY = "test-other-shop-key"
API_KEYS = (
    f"{WEBSITE_KEY}:website,{CMMS_KEY}:cmms,{ADMIN_KEY}:admin,"
    f"{SHOP}@{SHOP_KEY}:website,{SHOP}@{SHOP_NEXT_KEY}:website,{OTHER_SHOP}@{OTHER_SHOP_KEY}:website"
)


def stack_settings(temporal_address: str, database_url: str, sim: SimulatorProcess, **overrides: Any) -> Settings:
    """Settings fixed by the test alone: no environment variable or `.env` changes them."""
    values: dict[str, Any] = {
        "environment": "test",
        "temporal_address": temporal_address,
        "temporal_task_queue": f"test-{secrets.token_hex(4)}",
        "database_url": database_url,
        "api_port": free_port(),
        "api_keys": API_KEYS,
        "cmms_url": sim.base_url,
        "cmms_token": sim.token,
        "cmms_timeout_seconds": 5.0,
        "worker_metrics_port": 0,
        # No scheduled reconciliation: the tests share one CMMS simulator, whose records of other tests'
        # databases a reconciliation would take for orphans. A test that wants the schedule says so.
        "reconcile_every": None,  # a test that reads the worker's metrics picks a free port
        # No wake sweep runs beside a test's worker (nor on a time-skipping server's clock): every account
        # keeps its timer. A test of the sweep sets the horizon and calls the sweep itself.
        "account_wake_sweep_seconds": 0,
    }
    values |= overrides
    # Delivery reports come back to this test's API.
    values.setdefault("sms_report_base_url", f"http://127.0.0.1:{values['api_port']}")
    return Settings(_env_file=None, **values)


@dataclass
class Stack:
    settings: Settings
    api: httpx.AsyncClient  # the API over its real socket, without credentials
    sim: SimulatorProcess
    temporal: Client
    sessions: SessionMaker

    def as_role(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.as_role(ADMIN_KEY)

    @property
    def website(self) -> dict[str, str]:
        return self.as_role(WEBSITE_KEY)

    @property
    def cmms(self) -> dict[str, str]:
        return self.as_role(CMMS_KEY)

    @property
    def shop(self) -> dict[str, str]:
        """The named website key "shop" (the first of its two)."""
        return self.as_role(SHOP_KEY)

    @property
    def other_shop(self) -> dict[str, str]:
        """The named website key "other-shop"."""
        return self.as_role(OTHER_SHOP_KEY)


@asynccontextmanager
async def serving(
    app: ASGIApp, port: int, *, lifespan: Literal["on", "off"] = "on", keep_alive_seconds: int = 5
) -> AsyncIterator[str]:
    """An ASGI app under uvicorn on a real port of 127.0.0.1; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan=lifespan,
        timeout_keep_alive=keep_alive_seconds,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def serving_api(settings: Settings) -> AbstractAsyncContextManager[str]:
    """The FastAPI app on the settings' port; yields its base URL."""
    return serving(create_app(settings), settings.api.port, keep_alive_seconds=settings.api.keep_alive_seconds)


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    """The worker, exporting its metrics on the settings' `worker_metrics_port` when it is not 0."""
    engine = open_billing(settings.database)
    client = await connect(settings.temporal, runtime=metrics_runtime(settings.worker))
    async with (
        CmmsClient(
            settings.cmms.url,
            settings.cmms.token.get_secret_value(),
            timeout=5.0,
            rate_limit_per_second=settings.cmms.rate_limit_per_second,
        ) as cmms,
        AsyncExitStack() as workers,
    ):
        sessions = make_sessionmaker(engine)
        source = await workers.enter_async_context(billing_source(settings, sessions))
        registrar = await workers.enter_async_context(sip_registrar(settings))
        for worker in build_workers(client, settings, sessions, cmms, source, registrar):
            await workers.enter_async_context(worker)
        yield
    await engine.dispose()


@asynccontextmanager
async def running_stack(settings: Settings, sim: SimulatorProcess) -> AsyncIterator[Stack]:
    engine = open_billing(settings.database)
    async with (
        running_worker(settings),
        serving_api(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30.0) as api,
    ):
        yield Stack(settings, api, sim, await connect(settings.temporal), make_sessionmaker(engine))
    await engine.dispose()
