"""Run the CMMS simulator as a real separate process for a test: `async with running_simulator(dir)`."""

import asyncio
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import httpx

from clients.cmms import CmmsClient
from contracts.cmms import CMMS_PAGE_MAX, CmmsPage, CmmsRecord
from tests.support.net import free_port
from tests.support.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0


class SimulatorProcess:
    """One `python -m simulators.cmms` subprocess, with helpers to drive and inspect it.

    The port and the state file stay the same across `restart()`, so a restart forgets nothing.
    """

    def __init__(self, state_dir: Path, **env_overrides: str) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = int(env_overrides.pop("CMMS_SIM_PORT", "") or free_port(self.host))
        self.token = env_overrides.pop("CMMS_TOKEN", "") or f"sim-token-{secrets.token_hex(8)}"
        self.state_path = Path(env_overrides.pop("CMMS_SIM_STATE", "") or state_dir / "cmms-sim.sqlite3")
        self.log_path = state_dir / "cmms-sim.log"
        settings = {
            "CMMS_SIM_HOST": self.host,
            "CMMS_SIM_PORT": str(self.port),
            "CMMS_TOKEN": self.token,
            "CMMS_SIM_STATE": str(self.state_path),
            # Every setting explicit, so neither the shell nor a developer's `.env` changes a test.
            "CMMS_SIM_PROFILES": "Residential,Business",
            "SMS_USERNAME": "kannel",
            "SMS_PASSWORD": "kannel-dev",
        } | env_overrides
        self.sms_username = settings["SMS_USERNAME"]
        self.sms_password = settings["SMS_PASSWORD"]
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CMMS_", "SMS_"))}
        self._env = inherited | settings | {"PYTHONUNBUFFERED": "1"}
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def base_url(self) -> str:
        """Where the simulator answers, e.g. `http://127.0.0.1:41234`."""
        return f"http://{self.host}:{self.port}"

    @property
    def http(self) -> httpx.AsyncClient:
        """A plain HTTP client on the simulator (no auth header)."""
        if self._http is None:
            raise RuntimeError("the simulator is not running")
        return self._http

    @property
    def auth(self) -> dict[str, str]:
        """The provisioning API's auth header."""
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, *, timeout: float = 10.0) -> CmmsClient:
        """A `CmmsClient` on this simulator (close it, or use it with `async with`)."""
        return CmmsClient(self.base_url, self.token, timeout=timeout)

    def log_text(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self) -> None:
        """Start the process and wait until `/healthz` answers."""
        if self._proc is not None:
            raise RuntimeError("the simulator is already running")
        self._log = self.log_path.open("ab")
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "simulators.cmms",
            cwd=REPO_ROOT,
            env=self._env,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=5.0)
        try:
            await self._wait_healthy()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL if it lingers)."""
        proc, self._proc = self._proc, None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if proc is not None:
            await stop_process(proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    async def restart(self) -> None:
        """Stop and start again, on the same port and state file."""
        await self.stop()
        await self.start()

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.returncode is not None:
                raise RuntimeError(f"the CMMS simulator exited at start-up:\n{self.log_text()[-4000:]}")
            try:
                if (await self.http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the CMMS simulator did not answer within {STARTUP_TIMEOUT}s:\n{self.log_text()[-4000:]}")

    # --- test helpers ---

    async def set_faults(self, **faults: Any) -> dict[str, Any]:
        """`PUT /_sim/faults` (replaces what was set); returns what is now set."""
        response = await self.http.put("/_sim/faults", json=faults)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def clear_faults(self) -> None:
        """`DELETE /_sim/faults`."""
        (await self.http.delete("/_sim/faults")).raise_for_status()

    async def rotate_token(self, token: str) -> None:
        """`PUT /_sim/token`: from now on the provisioning API accepts `token` only (kept on a restart
        of this process too)."""
        (await self.http.put("/_sim/token", json={"token": token})).raise_for_status()
        self.token = token
        self._env["CMMS_TOKEN"] = token

    async def stats(self) -> dict[str, Any]:
        """`GET /_sim/stats`."""
        response = await self.http.get("/_sim/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def reset_stats(self) -> None:
        """`DELETE /_sim/stats`."""
        (await self.http.delete("/_sim/stats")).raise_for_status()

    async def get_record(self, account_id: str) -> CmmsRecord | None:
        """The simulator's record of an account, or None (through the API: injected faults apply)."""
        response = await self.http.get(f"/api/v1/accounts/{account_id}", headers=self.auth)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return CmmsRecord.model_validate_json(response.content)

    async def records(self) -> list[CmmsRecord]:
        """Every record the simulator holds, in account id order (paging through `GET /api/v1/accounts`)."""
        records: list[CmmsRecord] = []
        after: str | None = None
        while True:
            params = {"limit": CMMS_PAGE_MAX} | ({"after": after} if after is not None else {})
            response = await self.http.get("/api/v1/accounts", params=params, headers=self.auth)
            response.raise_for_status()
            page = CmmsPage.model_validate_json(response.content)
            records += page.accounts
            if page.next is None:
                return records
            after = page.next

    async def put_raw(self, account_id: str, **record: Any) -> CmmsRecord:
        """`PUT /_sim/accounts/{id}`: write a record behind billing's back (no checks, no version rules)."""
        response = await self.http.put(f"/_sim/accounts/{account_id}", json=record)
        response.raise_for_status()
        return CmmsRecord.model_validate_json(response.content)

    async def drop(self, account_id: str) -> None:
        """`DELETE /_sim/accounts/{id}`: lose a record behind billing's back."""
        (await self.http.delete(f"/_sim/accounts/{account_id}")).raise_for_status()

    async def outbox(self, to: str | None = None) -> list[dict[str, Any]]:
        """The SMS sent (to `to`, `+` optional), newest last."""
        response = await self.http.get("/sms/v1/outbox", params={"to": to} if to is not None else None)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result


@asynccontextmanager
async def running_simulator(state_dir: Path, **env_overrides: str) -> AsyncIterator[SimulatorProcess]:
    """A running simulator whose state lives in `state_dir`; stopped on exit.

    `env_overrides` are its settings by variable name (`CMMS_SIM_PROFILES="A,B"`, `CMMS_TOKEN=...`).
    """
    sim = SimulatorProcess(state_dir, **env_overrides)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()
