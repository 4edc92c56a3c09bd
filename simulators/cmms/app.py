"""The simulator's FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from simulators import common
from simulators.cmms import app_side, control, device, provisioning, sms, smsc
from simulators.cmms.deps import BearerToken, SimState, get_sim
from simulators.cmms.faults import Faults
from simulators.cmms.settings import SimulatorSettings
from simulators.cmms.smsc_state import Smsc
from simulators.cmms.stats import Stats, StatsView
from simulators.cmms.store import Store


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

    app = common.create_app("CMMS simulator", lifespan)
    app.include_router(provisioning.router, tags=["provisioning"])
    app.include_router(device.router, tags=["device"])
    app.include_router(sms.router, tags=["sms"])
    app.include_router(smsc.router, tags=["sms"])
    app.include_router(control.router, tags=["simulator"])
    stats = common.stats_routes(
        lambda request: get_sim(request).stats,
        StatsView,
        "Provisioning calls served, in total and per wall-clock second, and the writes among them.",
    )
    app.include_router(stats, tags=["simulator"])
    app.include_router(app_side.router, tags=["app"])

    return app
