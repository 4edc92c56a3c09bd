"""The PortaBilling simulator's FastAPI application."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from simulators.portabilling import admin, control, rest
from simulators.portabilling import status as status_api
from simulators.portabilling.deps import SimState
from simulators.portabilling.events import EventBus
from simulators.portabilling.sessions import Sessions
from simulators.portabilling.settings import PortaBillingSimSettings
from simulators.portabilling.store import SimError, Store


class Health(BaseModel):
    """`GET /healthz`."""

    status: str = "ok"


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

    app = FastAPI(title="PortaBilling simulator", version="1", lifespan=lifespan)
    app.include_router(rest.router, tags=["JSON API"])
    app.include_router(status_api.router, tags=["ESPF status API"])
    app.include_router(admin.router, tags=["admin (simulator)"])
    app.include_router(control.router, tags=["simulator"])

    @app.exception_handler(SimError)
    async def refused(request: Request, exc: SimError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input, which would put a password in the answer.
        detail = [{"type": e["type"], "loc": e["loc"], "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.get("/healthz", tags=["simulator"])
    async def healthz() -> Health:
        return Health()

    return app
