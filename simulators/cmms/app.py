"""The simulator's FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from simulators.cmms import app_side, control, device, provisioning, sms, smsc
from simulators.cmms.deps import BearerToken, SimState
from simulators.cmms.faults import Faults
from simulators.cmms.settings import SimulatorSettings
from simulators.cmms.smsc_state import Smsc
from simulators.cmms.stats import Stats
from simulators.cmms.store import Store


class Health(BaseModel):
    """`GET /healthz`."""

    status: str = "ok"


def create_app(settings: SimulatorSettings) -> FastAPI:
    """Build the simulator; its state file is opened at start-up and closed at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.cmms_sim_state)
        token = BearerToken(settings.cmms_token.get_secret_value())
        app.state.sim = SimState(
            settings=settings, store=store, faults=Faults(), stats=Stats(), token=token, smsc=Smsc()
        )
        try:
            yield
        finally:
            store.close()

    app = FastAPI(title="CMMS simulator", version="1", lifespan=lifespan)
    app.include_router(provisioning.router, tags=["provisioning"])
    app.include_router(device.router, tags=["device"])
    app.include_router(sms.router, tags=["sms"])
    app.include_router(smsc.router, tags=["sms"])
    app.include_router(control.router, tags=["simulator"])
    app.include_router(app_side.router, tags=["app"])

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input, which would put the SIP password in the answer.
        detail = [{"type": e["type"], "loc": e["loc"], "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.get("/healthz", tags=["simulator"])
    async def healthz() -> Health:
        return Health()

    return app
