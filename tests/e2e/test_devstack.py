"""`make run` (python -m devstack): it names a taken port before starting anything, says "running"
only once every process answers, and says which ENVIRONMENT it runs. Each test runs the real
supervisor in a scratch directory (its var/ there), on ports of its own."""

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from clients.sip_registrar import SipRegistrar
from core.settings import Settings
from devstack.priority import BACKGROUND_NICE
from simulators.cmms.settings import SimulatorSettings
from simulators.portabilling.settings import PortaBillingSimSettings
from tests.support.net import free_port
from tests.support.sip import requires_sip, sipp_registers

ROOT = Path(__file__).resolve().parents[2]
RUNNING = "[devstack] running"


def _env(directory: Path, **overrides: str) -> dict[str, str]:
    simulators = {n.upper() for s in (SimulatorSettings, PortaBillingSimSettings) for n in s.model_fields}
    settings = Settings.variables() | simulators
    env = {k: v for k, v in os.environ.items() if k.upper() not in settings}  # nothing of the developer's
    sim = free_port()
    env |= {
        "PYTHONPATH": str(ROOT),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "TEMPORAL_UI_PORT": str(free_port()),
        "TEMPORAL_TASK_QUEUE": "devstack-test",
        "CMMS_SIM_PORT": str(sim),
        "CMMS_URL": f"http://127.0.0.1:{sim}",
        "SMS_GATEWAY_URL": f"http://127.0.0.1:{sim}/cgi-bin/sendsms",
        "CODEC_SERVER_PORT": str(free_port()),
        "WORKER_METRICS_PORT": str(free_port()),
        "API_PORT": str(free_port()),
        "PORTABILLING_SIM_PORT": str(free_port()),
    }
    return env | overrides


@dataclass
class Devstack:
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    async def read_until(self, text: str, seconds: float = 120) -> bool:
        """Read output until a line holds `text` (True) or the process ends (False)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(seconds):
            async for raw in self.process.stdout:
                self.lines.append(raw.decode(errors="replace"))
                if text in self.lines[-1]:
                    return True
        return False

    @property
    def output(self) -> str:
        return "".join(self.lines)


@asynccontextmanager
async def devstack(directory: Path, env: dict[str, str]) -> AsyncIterator[Devstack]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "devstack",
        cwd=directory,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    running = Devstack(process)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            await running.read_until("never printed", seconds=60)
            await process.wait()


async def test_a_taken_port_is_named_with_its_setting_before_anything_starts(tmp_path: Path) -> None:
    env = _env(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["API_PORT"])))
        squatter.listen()
        async with devstack(tmp_path, env) as stack:
            assert not await stack.read_until(RUNNING, seconds=60)
            assert await stack.process.wait() == 1
    assert "[devstack] ENVIRONMENT=development" in stack.output  # said out loud, first
    assert f"port {env['API_PORT']} on 127.0.0.1 (API) is taken" in stack.output
    assert "API_PORT" in stack.output
    assert "[temporal]" not in stack.output and "migrations" not in stack.output
    assert not (tmp_path / "var").exists()  # nothing was started, nothing written


async def test_a_worker_dying_at_start_up_leaves_no_running_banner(tmp_path: Path) -> None:
    # An address this host does not have: the worker's metrics exporter cannot bind, the worker exits.
    env = _env(tmp_path, WORKER_METRICS_HOST="192.0.2.1")
    async with devstack(tmp_path, env) as stack:
        assert not await stack.read_until(RUNNING)
        assert await stack.process.wait() == 1
    assert "could not start: worker exited" in stack.output
    assert RUNNING not in stack.output


async def test_running_is_said_once_every_process_answers(tmp_path: Path) -> None:
    env = _env(tmp_path)
    async with devstack(tmp_path, env) as stack:
        assert await stack.read_until(RUNNING), stack.output
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(f"http://127.0.0.1:{env['API_PORT']}/healthz")).status_code == 200
            assert (await http.get(f"http://127.0.0.1:{env['CMMS_SIM_PORT']}/healthz")).status_code == 200
            assert (await http.get(f"http://127.0.0.1:{env['CODEC_SERVER_PORT']}/healthz")).status_code == 200
            metrics = await http.get(f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}/metrics")
            assert 'task_queue="devstack-test"' in metrics.text  # the worker polls
        # A connection left idle past a client's own expiry (httpx's 5 s) is still open: uvicorn's
        # default closed it at 5 s, just as a client could send on it, and failed that request.
        api, sim = int(env["API_PORT"]), int(env["CMMS_SIM_PORT"])
        assert list(await asyncio.gather(_answers_after_idle(api), _answers_after_idle(sim))) == [[200, 200]] * 2
        # The API before the engine when CPU is short: the engine's processes (every thread) run at a
        # lower priority, in the supervisor's session, where the kernel weighs them against the API.
        children = _children(stack.process.pid)
        own = os.getpriority(os.PRIO_PROCESS, stack.process.pid)
        assert _nice(children["worker"]) == _nice(children["temporal"]) == {min(19, own + BACKGROUND_NICE)}
        assert _nice(children["api"]) == {own}
        assert {os.getsid(pid) for pid in children.values()} == {os.getsid(stack.process.pid)}
        stack.process.send_signal(signal.SIGINT)
        assert await stack.process.wait() == 0


async def _answers_after_idle(port: int, idle_seconds: float = 6) -> list[int]:
    """The statuses of two /healthz requests sent on one connection, `idle_seconds` apart."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    statuses = []
    try:
        for wait in (0, idle_seconds):
            await asyncio.sleep(wait)
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            await writer.drain()
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            length = next(int(h.split(":")[1]) for h in head.split("\r\n") if h.lower().startswith("content-length"))
            await reader.readexactly(length)
            statuses.append(int(head.split()[1]))
    except asyncio.IncompleteReadError:
        pass  # closed by the server: the statuses so far
    finally:
        writer.close()
    return statuses


def _children(pid: int) -> dict[str, int]:
    """The API, the worker and the Temporal server among the processes `pid` started, by name."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = [part.decode() for part in (entry / "cmdline").read_bytes().split(b"\0")]
        except (OSError, ValueError, IndexError):  # not a process, or one that ended meanwhile
            continue
        if ppid != pid:
            continue
        if argv[1:3] == ["-m", "api"]:
            found["api"] = int(entry.name)
        elif argv[1].endswith("worker.py"):
            found["worker"] = int(entry.name)
        elif Path(argv[0]).name == "temporal":
            found["temporal"] = int(entry.name)
    return found


def _nice(pid: int) -> set[int]:
    """The priority of every thread of `pid`."""
    return {os.getpriority(os.PRIO_PROCESS, int(task.name)) for task in Path(f"/proc/{pid}/task").iterdir()}


async def test_beside_portabilling_a_taken_simulator_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    env = _env(tmp_path, BILLING_SOURCE="portabilling")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["PORTABILLING_SIM_PORT"])))
        squatter.listen()
        async with devstack(tmp_path, env) as stack:
            assert not await stack.read_until(RUNNING, seconds=60)
            assert await stack.process.wait() == 1
    assert f"port {env['PORTABILLING_SIM_PORT']} on 127.0.0.1 (PortaBilling simulator) is taken" in stack.output
    assert "[temporal]" not in stack.output


async def test_beside_portabilling_its_simulator_runs_and_sends_its_events_to_the_api(tmp_path: Path) -> None:
    env = _env(tmp_path, BILLING_SOURCE="portabilling")
    sim = f"http://127.0.0.1:{env['PORTABILLING_SIM_PORT']}"
    async with devstack(tmp_path, env) as stack:
        assert await stack.read_until(RUNNING), stack.output
        assert await stack.read_until(f"PortaBilling   {sim}", seconds=5)
        async with httpx.AsyncClient(base_url=sim, timeout=5) as http:
            assert (await http.get("/healthz")).status_code == 200
            i_customer = (await http.post("/_sim/customers", json={"name": "Acme"})).json()["i_customer"]
            for _ in range(100):
                [event] = (await http.get("/_sim/events", params={"i_customer": i_customer})).json()
                if event["last_status"] is not None or event["last_error"]:  # an attempt was answered
                    break
                await asyncio.sleep(0.05)
        # The API answered the delivery (whatever it said): the event URL is the API's.
        assert event["last_status"] is not None and event["last_error"] is None, event
        stack.process.send_signal(signal.SIGINT)
        assert await stack.process.wait() == 0


async def test_a_taken_sip_port_is_named_with_its_setting(tmp_path: Path) -> None:
    env = _env(tmp_path, SIP_REGISTRAR="kamailio", SIP_PORT=str(free_port()))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", int(env["SIP_PORT"])))
        async with devstack(tmp_path, env) as stack:
            assert not await stack.read_until(RUNNING, seconds=60)
            assert await stack.process.wait() == 1
    assert f"UDP port {env['SIP_PORT']} on 127.0.0.1 (SIP registrar) is taken" in stack.output
    assert "SIP_PORT" in stack.output and "[temporal]" not in stack.output


@requires_sip
async def test_with_a_sip_registrar_kamailio_runs_on_the_table_the_worker_keeps(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, SIP_REGISTRAR="kamailio", SIP_PORT=str(port))
    async with devstack(tmp_path, env) as stack:
        assert await stack.read_until(RUNNING), stack.output
        assert await stack.read_until(f"SIP registrar  udp:127.0.0.1:{port}", seconds=5), stack.output
        # The table under var/ that the worker writes is the one Kamailio reads.
        async with SipRegistrar(f"sqlite:///{tmp_path / 'var' / 'sip.sqlite3'}") as registrar:
            await registrar.put("acct-devstack", "sip.example.net", SecretStr("Devstack-Secret-1"))
        assert await sipp_registers(port, "sip.example.net", "acct-devstack", "Devstack-Secret-1", cwd=tmp_path)
        assert not await sipp_registers(port, "sip.example.net", "acct-devstack", "wrong", cwd=tmp_path)
        stack.process.send_signal(signal.SIGINT)
        assert await stack.process.wait() == 0
