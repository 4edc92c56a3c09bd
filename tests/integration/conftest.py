"""Fixtures of the integration tier: migrated billing databases (SQLite and PostgreSQL), the whole stack
on them, and the PortaBilling simulator process with a receiver of its events."""

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.database import fresh_database
from tests.support.portabilling import (
    EventReceiver,
    PortaBillingAdmin,
    running_event_receiver,
    running_portabilling_sim,
)
from tests.support.simulator import SimulatorProcess
from tests.support.stack import Stack, running_stack, stack_settings


@pytest.fixture
async def faulty_sim(sim: SimulatorProcess) -> AsyncIterator[SimulatorProcess]:
    """The shared simulator, for a test that injects faults: they are cleared whatever the outcome."""
    yield sim
    await sim.clear_faults()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def billing_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated billing database: each module that uses it runs on SQLite and on PostgreSQL."""
    with fresh_database(request.param, tmp_path_factory.mktemp("billing")) as url:
        yield url


@pytest.fixture(scope="module")
async def stack(dev_server: str, billing_database: str, sim: SimulatorProcess) -> AsyncIterator[Stack]:
    """API (real socket) → Temporal dev server → worker → CMMS simulator (real process)."""
    async with running_stack(stack_settings(dev_server, billing_database, sim), sim) as running:
        yield running


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[EventReceiver]:
    """A real HTTP receiver of the PortaBilling simulator's ESPF events."""
    async with running_event_receiver() as running:
        yield running


@pytest.fixture(scope="module")
async def sim_url(receiver: EventReceiver) -> AsyncIterator[str]:
    """The PortaBilling simulator process, sending its events to `receiver`; no deliberate repeats (a test
    that wants them starts a simulator of its own)."""
    async with running_portabilling_sim(receiver.url, PORTABILLING_SIM_REPEAT_EVERY="0") as url:
        yield url


@pytest.fixture
async def admin(sim_url: str) -> AsyncIterator[PortaBillingAdmin]:
    """The PortaBilling simulator's control API; every fault off and every held event released afterwards."""
    admin = PortaBillingAdmin(sim_url)
    yield admin
    await admin.heal()
    await admin.release()
