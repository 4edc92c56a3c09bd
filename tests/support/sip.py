"""A real Kamailio registrar for a test, reading a registrar database, and sipp as the phone.

`async with running_sip_stack(backend, dev_server, sim, dir) as sip` is a whole stack (API, worker,
billing's database) keeping a registrar database of its own, with Kamailio reading it;
`async with running_kamailio(dir, database_url) as kamailio` creates the subscriber table when missing,
starts Kamailio on a free UDP port of 127.0.0.1 (`devstack/kamailio/kamailio.cfg`) and waits until it
answers; `await kamailio.registers(domain, username, password)` is one phone's REGISTER (401 challenge,
then the digest): True on 200. Tests that need them skip, saying why, when `kamailio` or `sipp` is
not installed (`SIP_MISSING`).
"""

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from clients.sip_registrar import SipRegistrar
from devstack.kamailio import (
    answers_sip_soon,
    kamailio_argv,
    kamailio_binary,
    prepare_database,
    sipp_binary,
    sipp_register_argv,
)
from tests.support.database import fresh_database, postgres_database
from tests.support.net import free_port
from tests.support.processes import stop_process
from tests.support.simulator import SimulatorProcess
from tests.support.stack import Stack, running_stack, stack_settings

SIP_MISSING = (
    "Kamailio or sipp is not installed: apt-get install kamailio kamailio-sqlite-modules "
    "kamailio-postgres-modules sip-tester"
)
STARTUP_TIMEOUT = 20.0
REGISTER_TIMEOUT = 15.0

requires_sip = pytest.mark.skipif(kamailio_binary() is None or sipp_binary() is None, reason=SIP_MISSING)


class KamailioProcess:
    def __init__(self, directory: Path, database_url: str) -> None:
        binary = kamailio_binary()
        if binary is None:
            raise RuntimeError(SIP_MISSING)
        self.directory = directory
        self.database_url = database_url
        self.port = free_port()  # a free TCP port; UDP's is very likely free too, and checked at start
        self._argv = kamailio_argv(binary, database_url, self.port)
        self._proc: asyncio.subprocess.Process | None = None
        self._output: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "kamailio.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        await prepare_database(self.database_url)
        self._output = self.log_path.open("ab")
        self._proc = await asyncio.create_subprocess_exec(
            *self._argv, stdout=self._output, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not await answers_sip_soon(self.port):
            if self._proc.returncode is not None or time.monotonic() > deadline:
                await self.stop()
                raise RuntimeError(f"kamailio did not start:\n{self.log_text()[-3000:]}")

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await stop_process(proc)
        if self._output is not None:
            self._output.close()
            self._output = None

    async def registers(self, domain: str, username: str, password: str) -> bool:
        """One REGISTER by sipp as `username`@`domain` with `password`: True when answered 200."""
        return await sipp_registers(self.port, domain, username, password, cwd=self.directory)


async def sipp_registers(port: int, domain: str, username: str, password: str, *, cwd: Path) -> bool:
    """One phone's REGISTER by sipp to UDP 127.0.0.1:`port` as `username`@`domain` with `password`: True
    when answered 200 (after the challenge), False when refused (403, or a second 401)."""
    sipp = sipp_binary()
    assert sipp is not None, SIP_MISSING
    proc = await asyncio.create_subprocess_exec(
        *sipp_register_argv(sipp, port, domain=domain, username=username, password=password),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
        cwd=cwd,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), REGISTER_TIMEOUT)
    if proc.returncode not in (0, 1):  # 1: the call failed (refused); anything else: sipp itself failed
        raise RuntimeError(f"sipp exited with {proc.returncode}:\n{output.decode(errors='replace')[-2000:]}")
    return proc.returncode == 0


@asynccontextmanager
async def running_kamailio(directory: Path, database_url: str) -> AsyncIterator[KamailioProcess]:
    kamailio = KamailioProcess(directory, database_url)
    await kamailio.start()
    try:
        yield kamailio
    finally:
        await kamailio.stop()


@dataclass
class SipStack:
    stack: Stack
    kamailio: KamailioProcess
    registrar: SipRegistrar
    backend: str

    def execute(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """One SQL statement on the registrar's database, behind the service's back (`?` placeholders)."""
        url = make_url(self.kamailio.database_url)
        if self.backend == "sqlite":
            with sqlite3.connect(url.database or "") as conn:
                return conn.execute(statement, params).fetchall()
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo) as conn:
            cursor = conn.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    @contextmanager
    def down(self) -> Iterator[None]:
        """The registrar's database refusing the worker's writes for a while: SQLite locked by another
        writer; PostgreSQL refusing connections to the database (its open ones ended)."""
        url = make_url(self.kamailio.database_url)
        if self.backend == "sqlite":
            holder = sqlite3.connect(url.database or "", timeout=30, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            return
        name = url.database
        admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            try:
                yield
            finally:
                conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@contextmanager
def registrar_database(backend: str, directory: Path) -> Iterator[str]:
    """The registrar's own database (not billing's), empty: the worker and Kamailio make its table."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'sip.sqlite3'}"
        return
    with postgres_database() as url:
        yield url


@asynccontextmanager
async def running_sip_stack(
    backend: str, dev_server: str, sim: SimulatorProcess, state: Path, **overrides: Any
) -> AsyncIterator[SipStack]:
    """A stack with SIP_REGISTRAR=kamailio on `backend` (billing's database and the registrar's), and a
    Kamailio reading the registrar's."""
    with fresh_database(backend, state) as billing_url, registrar_database(backend, state) as registrar_url:
        settings = stack_settings(
            dev_server, billing_url, sim, sip_registrar="kamailio", sip_database_url=registrar_url, **overrides
        )
        async with (
            running_kamailio(state / "kamailio", registrar_url) as kamailio,
            running_stack(settings, sim) as stack,
            SipRegistrar(registrar_url) as registrar,
        ):
            yield SipStack(stack, kamailio, registrar, backend)
