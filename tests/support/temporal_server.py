"""A Temporal dev server of a test's own, for tests that stop it or need it configured otherwise."""

import asyncio
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from devstack.temporal_server import cli_path, dev_server_args, wait_until_listening
from tests.support.net import free_port


class OwnTemporalServer:
    """A dev server of its own, its state in a file: stopped and started again, it remembers it all.
    Without `search_attributes`, the service's search attributes are not registered on it."""

    def __init__(self, db_file: Path, *, search_attributes: bool = True) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._args = dev_server_args(
            host="127.0.0.1", port=self.port, ui_port=None, db_file=db_file, search_attributes=search_attributes
        )
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            str(cli_path()), *self._args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await wait_until_listening(self.port, seconds=30)

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()


def server_address(env: WorkflowEnvironment) -> str:
    """Where a test environment's Temporal server listens, for `connect()` and the stack's settings."""
    return env.client.service_client.config.target_host
