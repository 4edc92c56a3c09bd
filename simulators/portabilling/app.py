"""The PortaBilling simulator's FastAPI application."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from simulators import common
from simulators.portabilling import admin, control, rest
from simulators.portabilling import status as status_api
from simulators.portabilling.deps import SimState, get_sim
from simulators.portabilling.events import EventBus
from simulators.portabilling.sessions import Sessions
from simulators.portabilling.settings import PortaBillingSimSettings
from simulators.portabilling.stats import StatsView
from simulators.portabilling.store import SimError, Store


def create_app(settings: PortaBillingSimSettings) -> FastAPI:
    """Build the simulator; its event dispatcher runs from start-up to shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events = EventBus(settings)
        sessions = Sessions(settings.portabilling_sim_token_ttl_seconds)
        app.state.sim = SimState(
            settings=settings, store=Store(settings.portabilling_sim_id_offset), sessions=sessions, events=events
        )
        dispatcher = asyncio.create_task(events.run())
        try:
            yield
        finally:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher
            await events.close()

    app = common.create_app("PortaBilling simulator", lifespan)
    app.include_router(rest.router, tags=["JSON API"])
    app.include_router(status_api.router, tags=["ESPF status API"])
    app.include_router(admin.router, tags=["admin (simulator)"])
    app.include_router(control.router, tags=["simulator"])
    stats = common.stats_routes(lambda request: get_sim(request).stats, StatsView, "Logins, refusals and calls served.")
    app.include_router(stats, tags=["simulator"])

    @app.exception_handler(SimError)
    async def refused(request: Request, exc: SimError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    return app
