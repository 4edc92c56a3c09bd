"""The PortaBilling simulator as a real separate process for a test, a client of its control API, and a
small ESPF event receiver that records what it is sent.

    async with running_event_receiver() as receiver, running_portabilling_sim(receiver.url) as url:
        admin = PortaBillingAdmin(url)
        ...
"""

import asyncio
import base64
import os
import secrets
import string
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request, Response

from clients.portabilling.client import PortaBillingClient
from core.dev_secrets import DEV_ESPF_PASSWORD, DEV_PORTABILLING_PASSWORD
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.processes import stop_process
from tests.support.stack import Stack, serving

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0
LOGIN = "cmms-sync"
PASSWORD = DEV_PORTABILLING_PASSWORD
ESPF_USERNAME = "espf"
ESPF_PASSWORD = DEV_ESPF_PASSWORD


@asynccontextmanager
async def running_portabilling_sim(event_url: str, **overrides: str) -> AsyncIterator[str]:
    """`python -m simulators.portabilling` on a free port of 127.0.0.1, sending its events to `event_url`;
    yields its base URL and stops it on exit.

    Its settings are the service's development defaults (so `Settings(_env_file=None)` logs in), every
    one given explicitly so that neither the shell nor a `.env` changes a test; `overrides` replace
    them by variable name (`PORTABILLING_SIM_REPEAT_EVERY="0"`, `PORTABILLING_PASSWORD=...`).
    """
    port = int(overrides.pop("PORTABILLING_SIM_PORT", "") or free_port())
    settings = {
        "PORTABILLING_SIM_HOST": "127.0.0.1",
        "PORTABILLING_SIM_PORT": str(port),
        "PORTABILLING_SIM_STATE": "memory",
        "PORTABILLING_SIM_EVENT_URL": event_url,
        "PORTABILLING_LOGIN": LOGIN,
        "PORTABILLING_PASSWORD": PASSWORD,
        "PORTABILLING_IMEI_FIELD": "IMEI",
        "ESPF_USERNAME": ESPF_USERNAME,
        "ESPF_PASSWORD": ESPF_PASSWORD,
        "PORTABILLING_SIM_TOKEN_TTL_SECONDS": "3600",
        "PORTABILLING_SIM_REPEAT_EVERY": "10",
        "PORTABILLING_SIM_EVENTS_PER_SECOND": "0",
        "PORTABILLING_SIM_EVENT_CONCURRENCY": "4",
        "PORTABILLING_SIM_STATUS_ENCODING": "json",
    } | overrides
    inherited = {k: v for k, v in os.environ.items() if not k.upper().startswith(("PORTABILLING_", "ESPF_"))}
    env = inherited | settings | {"PYTHONUNBUFFERED": "1"}
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="portabilling-sim-") as scratch:
        log_path = Path(scratch) / "portabilling-sim.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "simulators.portabilling", cwd=REPO_ROOT, env=env, stdout=log, stderr=log
            )
            try:
                await _wait_healthy(process, base_url, log_path)
                yield base_url
            finally:
                await stop_process(process)


async def _wait_healthy(process: asyncio.subprocess.Process, base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"the PortaBilling simulator exited at start-up:\n{_tail(log_path)}")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the PortaBilling simulator did not answer in {STARTUP_TIMEOUT}s:\n{_tail(log_path)}")


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-4000:]


def portabilling_client(base_url: str, *, password: str = PASSWORD, timeout: float = 5.0) -> PortaBillingClient:
    """A client logging in as the simulator's API user (close it, or use it with `async with`)."""
    return PortaBillingClient(base_url, LOGIN, password, timeout=timeout)


class PortaBillingAdmin:
    """The simulator's control API, as a PortaBilling administrator and a test use it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    async def _send(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10.0) as http:
            query = {k: v for k, v in params.items() if v is not None}
            response = await http.request(method, path, json=body, params=query)
        response.raise_for_status()
        return response.json() if response.content else None

    async def add_product(self, name: str = "Softphone", *, messaging_push_events: bool = True) -> int:
        body = {"name": name, "messaging_push_events": messaging_push_events}
        i_product: int = (await self._send("POST", "/_sim/products", body))["i_product"]
        return i_product

    async def change_product(self, i_product: int, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._send("PATCH", f"/_sim/products/{i_product}", changes)
        return result

    async def add_customer(self, name: str = "Acme", custom_fields: dict[str, str] | None = None) -> int:
        body = {"name": name, "custom_fields": custom_fields or {}}
        i_customer: int = (await self._send("POST", "/_sim/customers", body))["i_customer"]
        return i_customer

    async def change_customer(self, i_customer: int, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._send("PATCH", f"/_sim/customers/{i_customer}", changes)
        return result

    async def delete_customer(self, i_customer: int) -> None:
        await self._send("DELETE", f"/_sim/customers/{i_customer}")

    async def add_account(self, account_id: str, i_customer: int, i_product: int, **fields: Any) -> dict[str, Any]:
        """The new account's whole record (its `service_password` included) and the events emitted."""
        body = {"id": account_id, "i_customer": i_customer, "i_product": i_product} | fields
        result: dict[str, Any] = await self._send("POST", "/_sim/accounts", body)
        return result

    async def change_account(self, i_account: int, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._send("PATCH", f"/_sim/accounts/{i_account}", changes)
        return result

    async def remove_account(self, i_account: int) -> None:
        """Remove the account's record without an event (a purge of PortaBilling's database)."""
        await self._send("DELETE", f"/_sim/accounts/{i_account}")

    async def account(self, i_account: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._send("GET", f"/_sim/accounts/{i_account}")
        return result

    async def top_up(self, i_account: int, units: int, valid_days: int | None = None) -> dict[str, Any]:
        body = {"service": "messaging", "units": units, "valid_days": valid_days}
        result: dict[str, Any] = await self._send("POST", f"/_sim/accounts/{i_account}/topups", body)
        return result

    async def charge(self, i_account: int, units: int) -> dict[str, Any]:
        body = {"service": "messaging", "units": units}
        result: dict[str, Any] = await self._send("POST", f"/_sim/accounts/{i_account}/charges", body)
        return result

    async def statuses(self, i_account: int | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._send("GET", "/_sim/status", i_account=i_account)
        return result

    async def events(self, *, i_account: int | None = None, i_customer: int | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._send(
            "GET", "/_sim/events", i_account=i_account, i_customer=i_customer
        )
        return result

    async def hold(self) -> None:
        await self._send("POST", "/_sim/events/hold")

    async def release(self, order: Literal["fifo", "reverse"] = "fifo") -> int:
        released: int = (await self._send("POST", "/_sim/events/release", {"order": order}))["released"]
        return released

    async def redeliver(self, i_event: int) -> None:
        await self._send("POST", f"/_sim/events/{i_event}/redeliver")

    async def faults(self, **faults: Any) -> dict[str, Any]:
        """`POST /_sim/faults` (`api="down"`, `status_api="down"`, `revoke_tokens=True`, `sessions="refused"`,
        `api="ok"`...): only the ones given change."""
        result: dict[str, Any] = await self._send("POST", "/_sim/faults", faults)
        return result

    async def heal(self) -> None:
        """Every fault off."""
        await self.faults(
            api="ok",
            status_api="ok",
            sessions="ok",
            session_fault="Server.Session.check_auth.auth_failed",
            hidden_fields=[],
            undefined_custom_fields=[],
        )

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._send("GET", "/_sim/stats")
        return result

    async def delivered(self, *, within: float = 10.0, **about: int) -> list[dict[str, Any]]:
        """The events about an account or customer once none waits to be delivered (or `within` s passed)."""
        deadline = time.monotonic() + within
        while True:
            events = await self.events(**about)
            if all(e["state"] != "queued" for e in events) or time.monotonic() > deadline:
                return events
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Received:
    """One POST the receiver got, and what it answered."""

    event_type: str
    variables: dict[str, str]
    authorization: str
    date: str
    content_type: str
    answered: int
    at: datetime

    @property
    def credentials(self) -> tuple[str, str]:
        """The HTTP basic user and password sent."""
        scheme, _, encoded = self.authorization.partition(" ")
        assert scheme == "Basic", self.authorization
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return user, password


@dataclass
class EventReceiver:
    """Records each event POSTed to it; answers 200, or the statuses queued by `fail_next`."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    _failures: list[int] = field(default_factory=list)

    def fail_next(self, times: int = 1, status: int = 500) -> None:
        self._failures += [status] * times

    def about(self, **ids: int) -> list[Received]:
        """What was received about `i_account=` / `i_customer=`, in arrival order."""
        wanted = {k: str(v) for k, v in ids.items()}
        return [r for r in self.received if all(r.variables.get(k) == v for k, v in wanted.items())]

    async def wait_for(self, check: Callable[[], bool], within: float = 10.0) -> None:
        """Until `check()` holds; AssertionError (listing what came) after `within` seconds."""

        async def received() -> list[tuple[str, dict[str, str]]]:
            return [(r.event_type, r.variables) for r in self.received]

        await eventually(received, lambda _: check(), within=within, every=0.02, what="the events awaited")

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/events")
        async def receive(request: Request) -> Response:
            body = await request.json()
            answered = self._failures.pop(0) if self._failures else 200
            self.received.append(
                Received(
                    event_type=body["event_type"],
                    variables=body["variables"],
                    authorization=request.headers.get("authorization", ""),
                    date=request.headers.get("date", ""),
                    content_type=request.headers.get("content-type", ""),
                    answered=answered,
                    at=datetime.now(UTC),
                )
            )
            return Response(status_code=answered)

        return app


@asynccontextmanager
async def running_event_receiver() -> AsyncIterator[EventReceiver]:
    """An `EventReceiver` on a free port; its `url` is where to send the events."""
    receiver = EventReceiver()
    async with serving(receiver.app(), free_port(), lifespan="off") as base_url:
        receiver.url = f"{base_url}/events"
        yield receiver


@dataclass
class Beside:
    """The stack beside a PortaBilling simulator, with its control API (an administrator's hands)."""

    stack: Stack
    pb: httpx.AsyncClient

    async def create(self, path: str, **body: Any) -> dict[str, Any]:
        response = await self.pb.post(f"/_sim/{path}", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def change(self, path: str, **body: Any) -> None:
        response = await self.pb.patch(f"/_sim/{path}", json=body)
        assert response.status_code == 200, response.text

    async def statuses(self, i_account: int) -> list[dict[str, Any]]:
        response = await self.pb.get("/_sim/status", params={"i_account": i_account})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    async def new_account(self, imei: str, **extra: Any) -> tuple[int, str, str]:
        """A customer with a product and one account; returns (i_account, id, service password)."""
        product = await self.create("products", name="Mobile", messaging_push_events=extra.pop("push", False))
        customer = await self.create(
            "customers", name="Acme", custom_fields=extra.pop("custom_fields", {"profileName": "Business"})
        )
        account = await self.create(
            "accounts",
            id=extra.pop("id", new_id()),
            i_customer=customer["i_customer"],
            i_product=product["i_product"],
            imei=imei,
            **extra,
        )
        return account["i_account"], account["id"], account["service_password"]


def new_imei() -> str:
    """A fresh IMEI: the CMMS simulator is shared by the whole session (and both databases' runs)."""
    return "35" + "".join(secrets.choice(string.digits) for _ in range(13))


def new_id() -> str:
    """A fresh account id (a phone number's digits), for the same reason."""
    return "1" + "".join(secrets.choice(string.digits) for _ in range(10))
