"""A real Kannel (Debian's `bearerbox` and `smsbox`) for a test, in front of a simulator's SMSC endpoint.

`async with running_kannel(dir, sim) as kannel` starts both boxes on free ports with a generated
configuration (`devstack.kannel`); `kannel.sendsms_url` is where the adapter sends. Tests that need
Kannel skip, saying why, when its binaries are not installed (`KANNEL_MISSING`).
"""

import asyncio
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import pytest

from devstack.kannel import INFO, KannelConfig, kannel_binaries
from tests.support.net import free_port
from tests.support.processes import stop_process
from tests.support.simulator import SimulatorProcess

KANNEL_MISSING = "Kannel is not installed (bearerbox/smsbox not found): apt-get install kannel"
STARTUP_TIMEOUT = 20.0

requires_kannel = pytest.mark.skipif(kannel_binaries() is None, reason=KANNEL_MISSING)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class KannelProcess:
    """The two boxes as child processes; the bearerbox can be stopped and started under a test."""

    def __init__(
        self,
        directory: Path,
        sim: SimulatorProcess,
        *,
        username: str,
        password: str,
        outgoing_queue_limit: int | None = None,
    ) -> None:
        binaries = kannel_binaries()
        if binaries is None:
            raise RuntimeError(KANNEL_MISSING)
        self._binaries = binaries
        self.config = KannelConfig(
            directory=directory,
            smsc_url=sim.base_url,
            admin_port=free_port(),
            smsbox_port=free_port(),
            smsc_port=free_port(),
            sendsms_port=free_port(),
            username=username,
            password=password,
            admin_password=secrets.token_hex(8),
            log_level=INFO,  # the tests read what the smsbox was asked
            access_log=True,
            outgoing_queue_limit=outgoing_queue_limit,
        )
        self.config.write()
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._outputs: dict[str, IO[bytes]] = {}

    @property
    def sendsms_url(self) -> str:
        return self.config.sendsms_url

    def log_text(self, box: str) -> str:
        path = self.config.log_path(box)
        return path.read_text(errors="replace") if path.exists() else ""

    def sendsms_requests(self) -> int:
        """How many HTTP requests the smsbox's sendsms interface has had."""
        return self.log_text("smsbox").count("Got HTTP request </cgi-bin/sendsms>")

    async def start(self) -> None:
        await self.start_bearerbox()

    async def start_bearerbox(self) -> None:
        """Start the bearerbox, then the smsbox (it exits whenever its bearerbox goes away)."""
        await self._start("bearerbox", self.config.smsbox_port)
        await self._start("smsbox", self.config.sendsms_port)

    async def stop_bearerbox(self) -> None:
        """Stop the bearerbox as an operator would (SIGTERM); its smsbox follows it down."""
        await self._stop("bearerbox")
        await self._stop("smsbox")

    async def stop(self) -> None:
        await self._stop("smsbox")
        await self._stop("bearerbox")
        for output in self._outputs.values():
            output.close()
        self._outputs.clear()

    async def _start(self, box: str, port: int) -> None:
        running = self._procs.get(box)
        if running is not None and running.returncode is None:
            return
        output = self._outputs.get(box) or (self.config.directory / f"{box}.out").open("ab")
        self._outputs[box] = output
        proc = await asyncio.create_subprocess_exec(
            *self.config.argv(box, self._binaries), stdout=output, stderr=asyncio.subprocess.STDOUT
        )
        self._procs[box] = proc
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _listening(port):
            if proc.returncode is not None or time.monotonic() > deadline:
                await self.stop()
                raise RuntimeError(f"{box} did not start:\n{self.log_text(box)[-3000:]}")
            await asyncio.sleep(0.05)

    async def _stop(self, box: str) -> None:
        proc = self._procs.pop(box, None)
        if proc is not None:
            await stop_process(proc)


@asynccontextmanager
async def running_kannel(
    directory: Path, sim: SimulatorProcess, *, outgoing_queue_limit: int | None = None
) -> AsyncIterator[KannelProcess]:
    """Kannel with the simulator's sendsms credentials, delivering to the simulator's SMSC; stopped on exit."""
    kannel = KannelProcess(
        directory,
        sim,
        username=sim.sms_username,
        password=sim.sms_password,
        outgoing_queue_limit=outgoing_queue_limit,
    )
    await kannel.start()
    try:
        yield kannel
    finally:
        await kannel.stop()
