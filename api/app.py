"""The FastAPI application: built by `create_app`, connected to Temporal and the database in its lifespan."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api.auth import ApiKeys
from api.body_limit import install_body_limit
from api.deps import AppState, builtin_billing
from api.docs import install_docs
from api.metrics import install_metrics
from api.openapi import install_openapi
from api.problems import install_problem_handlers
from api.routers import (
    accounts,
    audit,
    customer_classes,
    customers,
    imports,
    orders,
    portabilling,
    products,
    reconciliations,
    resellers,
    signup_list,
    signups,
    sms_reports,
    wallets,
)
from billing.db import make_sessionmaker, open_billing
from core.settings import Settings, get_settings
from core.temporal import connect
from services import operations_gauges
from services.outbox import Outbox
from services.portabilling_events import forget_old_events_forever
from services.rate_limit import make_rate_limiter
from services.signups import Signups

# The built-in billing's objects: beside PortaBilling they live there, and these routes refuse.
BUILTIN_BILLING_ROUTERS = [
    resellers.router,
    customer_classes.router,
    customers.router,
    products.router,
    orders.router,
    accounts.router,
    wallets.router,
    signups.router,
    signup_list.router,
    audit.router,
    imports.router,
]
ROUTERS = [reconciliations.router, sms_reports.router, portabilling.router]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = open_billing(settings.database)
        sessions = make_sessionmaker(engine)
        # Lazy: the API starts, and takes changes, while Temporal is unreachable; the outbox tells it later.
        temporal = await connect(settings.temporal, lazy=True)
        task_queue = settings.temporal.task_queue
        outbox = Outbox(sessions, temporal, settings.outbox, task_queue)
        redis_url = settings.signups.redis_url.get_secret_value() if settings.signups.redis_url else None
        limiter = make_rate_limiter(sessions, redis_url)
        keys = ApiKeys(settings.api.keys.get_secret_value())
        if settings.environment == "production":
            keys.warn_of_unnamed_website_keys()
        state = AppState(
            settings=settings,
            temporal=temporal,
            keys=keys,
            outbox=outbox,
            signups=Signups(
                sessions,
                temporal,
                settings.signups,
                limiter,
                provisioning=settings.provisioning,
                secret_key=settings.secret_key,
                task_queue=task_queue,
            ),
        )
        app.state.services = state
        background = [asyncio.create_task(outbox.relay_forever())]
        if settings.billing_source == "portabilling":
            background.append(asyncio.create_task(forget_old_events_forever(sessions, settings.portabilling)))
        yield
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await outbox.close()
        await limiter.aclose()
        await engine.dispose()

    app = FastAPI(
        title="CMMS provisioning API",
        version="1",
        summary="Billing-side provisioning of the AudioCodes CMMS-managed softphone app",
        lifespan=lifespan,
        docs_url=None,  # served from the packaged Swagger UI instead of a CDN (api.docs)
        redoc_url=None,
    )
    install_problem_handlers(app)
    # An import's file may be larger than any other body: that one route has a limit of its own.
    install_body_limit(app, settings.api.max_body_bytes, {"/v1/imports": settings.imports.max_body_bytes})
    gauges = operations_gauges.CachedGauges(settings.api.metrics_refresh_seconds)
    install_metrics(app, lambda: gauges.refresh(app.state.services.temporal))  # Prometheus at /metrics
    install_docs(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in BUILTIN_BILLING_ROUTERS:
        app.include_router(router, dependencies=[Depends(builtin_billing)])
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app, settings)  # after the routes: it documents each one's errors
    return app
