"""The whole system as `make run` starts it, in a scratch directory, for benchmarks.

Every process is real and separate (Temporal dev server on file-backed SQLite with WAL, the CMMS
simulator, the worker, the API), at the CPU priorities `make run` gives them (devstack.priority), so
figures include the same costs a user's deployment has.
"""

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from contracts.cmms import CMMS_PAGE_MAX
from core.settings import Settings
from devstack.ports import free_port
from devstack.priority import in_background
from devstack.temporal_server import cli_path, dev_server_args, wait_until_listening

REPO_ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used (from /proc; 0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class BenchStack:
    env: dict[str, str]
    api_url: str
    sim_url: str
    portabilling_url: str | None  # the PortaBilling simulator, when BILLING_SOURCE=portabilling
    temporal_address: str
    task_queue: str
    processes: dict[str, asyncio.subprocess.Process]
    argv: dict[str, tuple[str, ...]]  # how each process was started
    scratch: Path  # the scratch directory: the databases (temporal.db among them) and every process's log
    _spawn: Callable[..., Awaitable[asyncio.subprocess.Process]]

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    async def start_again(self, name: str) -> asyncio.subprocess.Process:
        """Start the process `name` again as it was first started (after a test stopped or killed it)."""
        return await self._spawn(name, *self.argv[name])

    async def wait_api(self) -> None:
        await _wait_http(f"{self.api_url}/healthz", self.processes["api"], "api")

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each process, this benchmark's own (`bench`) included."""
        used = {name: cpu_seconds(process.pid) for name, process in self.processes.items() if name != "migrate"}
        return used | {"bench": cpu_seconds(os.getpid())}


def stack_settings(stack: BenchStack) -> Settings:
    """The settings the stack's processes run with, for the benchmark's own calls (Temporal, billing)."""
    return Settings(
        _env_file=None,
        temporal_address=stack.temporal_address,
        temporal_task_queue=stack.task_queue,
        database_url=stack.env["DATABASE_URL"],
        cmms_url=stack.sim_url,
    )


async def cmms_records(sim: httpx.AsyncClient, token: str = "dev-cmms-token") -> list[dict[str, Any]]:
    """Every record the simulator at `sim` holds, paging through `GET /api/v1/accounts`."""
    records: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": CMMS_PAGE_MAX}
    while True:
        response = await sim.get("/api/v1/accounts", params=params, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        page = response.json()
        records += page["accounts"]
        if page["next"] is None:
            return records
        params["after"] = page["next"]


def cpu_ms_per_run(before: dict[str, float], after: dict[str, float], runs: int) -> dict[str, float]:
    """CPU milliseconds per workflow (or order) by process between two `BenchStack.cpu()` readings."""
    return {name: (after[name] - before.get(name, 0.0)) * 1000 / runs for name in after}


def cpu_per_run(before: dict[str, float], after: dict[str, float], runs: int) -> str:
    """`cpu_ms_per_run` in words, with the total."""
    spent = cpu_ms_per_run(before, after, runs)
    return ", ".join(f"{name} {ms:.0f}" for name, ms in spent.items()) + f" (total {sum(spent.values()):.0f} ms)"


async def _wait_http(url: str, process: asyncio.subprocess.Process, name: str, seconds: float = 60) -> None:
    async with httpx.AsyncClient(timeout=1.0) as client:
        for _ in range(int(seconds * 10)):
            if process.returncode is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} did not answer at {url}")


@asynccontextmanager
async def bench_stack(**settings: str) -> AsyncIterator[BenchStack]:
    """Start everything in a temporary directory; `settings` are extra environment variables."""
    var = Path(tempfile.mkdtemp(prefix="cmms-bench-"))
    try:
        temporal_port, api_port, sim_port, pb_port = free_port(), free_port(), free_port(), free_port()
        env = (
            os.environ
            | {
                "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
                "DATABASE_URL": f"sqlite:///{var / 'billing.sqlite3'}",
                "API_PORT": str(api_port),
                "CMMS_SIM_PORT": str(sim_port),
                "CMMS_SIM_STATE": str(var / "cmms-sim.sqlite3"),
                "CMMS_URL": f"http://127.0.0.1:{sim_port}",
                # Signups: the simulator relays the app's calls to this API, and is the SMS gateway that reports to it.
                "BILLING_API_URL": f"http://127.0.0.1:{api_port}",
                "SMS_REPORT_BASE_URL": f"http://127.0.0.1:{api_port}",
                "SMS_GATEWAY_URL": f"http://127.0.0.1:{sim_port}/cgi-bin/sendsms",
                "LOG_LEVEL": "WARNING",
                # A scheduled reconciliation (at the top of the hour) would run in the middle of a measurement.
                "RECONCILE_EVERY": "off",
                # The worker's Prometheus port: a free one, as two stacks at once (two benchmarks, or tests
                # in parallel) would both take the default and the second worker would exit at start.
                "WORKER_METRICS_PORT": str(free_port()),
                # Beside PortaBilling (BILLING_SOURCE=portabilling): its simulator, sending events to this API.
                "PORTABILLING_SIM_PORT": str(pb_port),
                "PORTABILLING_URL": f"http://127.0.0.1:{pb_port}",
                "PORTABILLING_SIM_EVENT_URL": f"http://127.0.0.1:{api_port}/v1/portabilling/events",
            }
            | settings
        )
        beside_portabilling = env.get("BILLING_SOURCE") == "portabilling"
        processes: dict[str, asyncio.subprocess.Process] = {}
        argvs: dict[str, tuple[str, ...]] = {}

        async def spawn(name: str, *argv: str) -> asyncio.subprocess.Process:
            argvs[name] = argv
            log = (var / f"{name}.log").open("ab")
            process = await asyncio.create_subprocess_exec(
                *argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
            processes[name] = process
            return process

        try:
            args = dev_server_args(host="127.0.0.1", port=temporal_port, ui_port=None, db_file=var / "temporal.db")
            await spawn("temporal", *in_background([str(cli_path()), *args]))
            await wait_until_listening(temporal_port)
            migrate = await spawn("migrate", sys.executable, "-m", "alembic", "upgrade", "head")
            if await migrate.wait() != 0:
                raise RuntimeError("migrations failed")
            sim = await spawn("simulator", sys.executable, "-m", "simulators.cmms")
            await _wait_http(f"http://127.0.0.1:{sim_port}/healthz", sim, "simulator")
            if beside_portabilling:
                portabilling = await spawn("portabilling-sim", sys.executable, "-m", "simulators.portabilling")
                await _wait_http(f"{env['PORTABILLING_URL']}/healthz", portabilling, "PortaBilling simulator")
            await spawn("worker", *in_background([sys.executable, "worker.py"]))
            api = await spawn("api", sys.executable, "-m", "api")
            await _wait_http(f"http://127.0.0.1:{api_port}/healthz", api, "api")
            yield BenchStack(
                env=env,
                api_url=f"http://127.0.0.1:{api_port}",
                sim_url=f"http://127.0.0.1:{sim_port}",
                portabilling_url=env["PORTABILLING_URL"] if beside_portabilling else None,
                temporal_address=env["TEMPORAL_ADDRESS"],
                task_queue=env.get("TEMPORAL_TASK_QUEUE", "provisioning"),
                processes=processes,
                argv=argvs,
                scratch=var,
                _spawn=spawn,
            )
        finally:
            print("CPU seconds by process: " + ", ".join(f"{n} {cpu_seconds(p.pid):.1f}" for n, p in processes.items()))
            for process in reversed(processes.values()):
                if process.returncode is None:
                    process.terminate()
                    try:
                        await asyncio.wait_for(process.wait(), 15)
                    except TimeoutError:
                        process.kill()
    finally:
        # BENCH_KEEP=1 keeps the scratch directory (every process's log) for a look afterwards.
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {var}")
        else:
            shutil.rmtree(var, ignore_errors=True)
