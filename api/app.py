"""The FastAPI application: built by `create_app`, connected to Temporal and the database in its lifespan."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.auth import KeyRing
from api.body_limit import install_body_limit
from api.deps import AppState
from api.metrics import install_metrics
from api.order_starts import keep_starting_unstarted_orders
from api.problems import install_problem_handlers
from api.routers import accounts, customer_classes, customers, orders, products, resellers, signups, wallets
from billing.db import make_engine, make_sessionmaker
from core.settings import Settings, get_settings
from core.temporal import connect

ROUTERS = [
    resellers.router,
    customer_classes.router,
    customers.router,
    products.router,
    orders.router,
    accounts.router,
    wallets.router,
    signups.router,
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        state = AppState(
            settings=settings,
            sessions=make_sessionmaker(engine),
            temporal=await connect(settings),
            keys=KeyRing(settings.api_keys.get_secret_value()),
        )
        app.state.services = state
        late_starts = asyncio.create_task(keep_starting_unstarted_orders(state.temporal, state.sessions, settings))
        yield
        late_starts.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await late_starts
        await engine.dispose()

    app = FastAPI(
        title="CMMS provisioning API",
        version="1",
        summary="Billing-side provisioning of the AudioCodes CMMS-managed softphone app",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    install_body_limit(app, settings.api_max_body_bytes)
    install_metrics(app)  # Prometheus at /metrics (issue 6)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    return app
