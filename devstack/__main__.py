"""`python -m devstack` (what `make run` does): the whole system on embedded defaults, stopped by Ctrl-C."""

import asyncio
import functools
import os
import socket
import sys
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from codec_server.auth import open_on_loopback
from core.settings import VAR_DIR, ApiSettings, Settings, SipSettings, SmsSettings, TemporalSettings, get_settings
from core.temporal import connect
from devstack.kamailio import answers_sip_soon, kamailio_argv, kamailio_binary, prepare_database
from devstack.kannel import busy_ports, devstack_config, kannel_binaries
from devstack.ports import Port, taken
from devstack.priority import in_background
from devstack.supervisor import Child, Supervisor
from devstack.temporal_server import cli_path, dev_server_args
from workflows.policies import cmms_task_queue

ROOT = Path(__file__).resolve().parents[1]


async def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


async def _http_ok(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def _polled_by(client: Client, temporal: TemporalSettings, pid: int) -> bool:
    """Whether the worker process `pid` polls both its task queues (its pollers carry `pid@host`)."""
    queues = (
        (temporal.task_queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        (cmms_task_queue(temporal.task_queue), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
    )
    for name, kind in queues:
        described = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=temporal.namespace, task_queue=TaskQueue(name=name), task_queue_type=kind
            )
        )
        if not any(poller.identity.startswith(f"{pid}@") for poller in described.pollers):
            return False
    return True


def _ports(settings: Settings, sim_port: int) -> list[Port]:
    temporal_host, _, temporal_port = settings.temporal.address.rpartition(":")
    beside_portabilling = [
        Port(
            "PortaBilling simulator",
            "127.0.0.1",
            settings.portabilling.sim_port,
            "PORTABILLING_SIM_PORT",
        )
    ]
    return [
        Port("Temporal", temporal_host, int(temporal_port), "TEMPORAL_ADDRESS"),
        Port("Temporal UI", temporal_host, settings.temporal.ui_port, "TEMPORAL_UI_PORT"),
        Port("CMMS simulator", "127.0.0.1", sim_port, "CMMS_SIM_PORT (and CMMS_URL, SMS_GATEWAY_URL)"),
        Port("codec server", settings.codec_server.host, settings.codec_server.port, "CODEC_SERVER_PORT"),
        Port("worker metrics", settings.worker.metrics_host, settings.worker.metrics_port, "WORKER_METRICS_PORT"),
        Port("API", settings.api.host, settings.api.port, "API_PORT"),
        *(beside_portabilling if settings.billing_source == "portabilling" else []),
        *(
            [Port("SIP registrar", "127.0.0.1", settings.sip.port, "SIP_PORT", udp=True)]
            if settings.sip.enabled
            else []
        ),
    ]


def _event_url(api: ApiSettings) -> str:
    """Where the PortaBilling simulator sends its ESPF events: the API's receiver."""
    host = "127.0.0.1" if api.host in ("0.0.0.0", "") else api.host  # noqa: S104
    return f"http://{host}:{api.port}/v1/portabilling/events"


async def _start_portabilling_sim(supervisor: Supervisor, settings: Settings) -> str:
    """The PortaBilling simulator, its events sent to the API (they are retried until the API answers,
    so it may start first); returns its URL."""
    url = f"http://127.0.0.1:{settings.portabilling.sim_port}"
    env = {
        "PORTABILLING_SIM_HOST": "127.0.0.1",
        "PORTABILLING_SIM_PORT": str(settings.portabilling.sim_port),
        "PORTABILLING_SIM_EVENT_URL": _event_url(settings.api),
    }
    child = Child("portabilling-sim", [sys.executable, "-m", "simulators.portabilling"], env=env)
    await supervisor.start(child, lambda: _http_ok(f"{url}/healthz"))
    if not settings.given("PORTABILLING_URL"):
        # The worker and the API (started next, with this environment) read this simulator.
        os.environ["PORTABILLING_URL"] = url
    return url


async def _start_kannel(supervisor: Supervisor, sim_url: str, sms: SmsSettings) -> None:
    """A real bearerbox and smsbox in front of the simulator's SMSC; the worker sends to this smsbox."""
    binaries = kannel_binaries()
    if binaries is None:
        raise RuntimeError("SMS_GATEWAY=kannel needs Kannel: apt-get install kannel")
    config = devstack_config(VAR_DIR / "kannel", sim_url, sms.username, sms.password.get_secret_value())
    busy = busy_ports(config)
    if busy:
        raise RuntimeError(f"Kannel's ports {busy} are taken (a system Kannel? `service kannel stop`)")
    config.write()
    for box, port in (("bearerbox", config.smsbox_port), ("smsbox", config.sendsms_port)):
        await supervisor.start(Child(box, config.argv(box, binaries)), functools.partial(_port_open, "127.0.0.1", port))
    # The worker (started next, with this environment) sends to the smsbox.
    os.environ["SMS_GATEWAY_URL"] = config.sendsms_url


async def _start_kamailio(supervisor: Supervisor, sip: SipSettings) -> str:
    """Kamailio on UDP 127.0.0.1:SIP_PORT, authenticating REGISTERs against the subscriber table the worker
    keeps (made here first: Kamailio checks it at start); returns its address."""
    binary = kamailio_binary()
    if binary is None:
        raise RuntimeError(
            "SIP_REGISTRAR=kamailio needs Kamailio: apt-get install kamailio kamailio-sqlite-modules"
            " kamailio-postgres-modules (and sip-tester for sipp)"
        )
    await prepare_database(sip.database_url)
    argv = kamailio_argv(binary, sip.database_url, sip.port)
    await supervisor.start(Child("kamailio", argv), functools.partial(answers_sip_soon, sip.port))
    return f"udp:127.0.0.1:{sip.port}"


async def main() -> int:
    settings = get_settings()
    print(
        f"[devstack] ENVIRONMENT={settings.environment}"
        + (
            ": development keys and tokens (see README), never for production"
            if settings.environment == "development"
            else ""
        ),
        flush=True,
    )
    temporal_host, _, temporal_port = settings.temporal.address.rpartition(":")
    sim_port = int(os.environ.get("CMMS_SIM_PORT", "8100"))
    problems = taken(_ports(settings, sim_port))
    if problems:
        for line in problems:
            print(f"[devstack] could not start: {line}", flush=True)
        return 1
    VAR_DIR.mkdir(exist_ok=True)
    python = sys.executable
    supervisor = Supervisor()
    supervisor.handle_signals()
    try:
        codec = f"http://{settings.codec_server.host}:{settings.codec_server.port}"
        args = dev_server_args(
            host=temporal_host,
            port=int(temporal_port),
            ui_port=settings.temporal.ui_port,
            db_file=VAR_DIR / "temporal.sqlite3",
            codec_endpoint=codec,
        )
        await supervisor.start(
            Child("temporal", in_background([str(cli_path()), *args])),
            lambda: _port_open(temporal_host, int(temporal_port)),
        )
        print("[devstack] applying billing database migrations", flush=True)
        migrate = await asyncio.create_subprocess_exec(
            python, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"
        )
        if await migrate.wait() != 0:
            raise RuntimeError("the billing database migrations failed")
        await supervisor.start(
            Child("cmms-sim", [python, "-m", "simulators.cmms"]),
            lambda: _http_ok(f"http://127.0.0.1:{sim_port}/healthz"),
        )
        if settings.sms.gateway == "kannel":
            await _start_kannel(supervisor, f"http://127.0.0.1:{sim_port}", settings.sms)
        registrar = await _start_kamailio(supervisor, settings.sip) if settings.sip.enabled else None
        portabilling = (
            await _start_portabilling_sim(supervisor, settings) if settings.billing_source == "portabilling" else None
        )
        await supervisor.start(
            Child("codec-server", [python, "-m", "codec_server"]), lambda: _http_ok(f"{codec}/healthz")
        )
        temporal = await connect(settings.temporal)
        worker = Child("worker", in_background([python, str(ROOT / "worker.py")]))
        await supervisor.start(worker, lambda: _polled_by(temporal, settings.temporal, worker.pid))
        api = f"http://{settings.api.host}:{settings.api.port}"
        await supervisor.start(Child("api", [python, "-m", "api"]), lambda: _http_ok(f"{api}/healthz"))
        # Every process answered; one that died since must not leave a "running" banner behind.
        supervisor.check_all_running()
    except RuntimeError as err:
        print(f"[devstack] could not start: {err}", flush=True)
        await supervisor.stop_all()
        return 1
    codec_access = (
        "the UI decodes without sign-in on this machine"
        if open_on_loopback(settings.environment, settings.codec_server.host)
        else f"sign in at {codec}/login with CODEC_SERVER_TOKEN; see docs/operations.md"
    )
    print(
        "\n[devstack] running — Ctrl-C stops everything\n"
        f"  API            {api}  (docs: {api}/docs)\n"
        f"  Temporal       {settings.temporal.address}  (UI: http://{temporal_host}:{settings.temporal.ui_port})\n"
        f"  codec server   {codec}  ({codec_access})\n"
        f"  CMMS simulator http://127.0.0.1:{sim_port}\n"
        + (
            f"  PortaBilling   {portabilling}  (simulator; ESPF events to {_event_url(settings.api)})\n"
            if portabilling
            else ""
        )
        + (
            f"  SIP registrar  {registrar}  (Kamailio; subscribers in {settings.sip.database_url})\n"
            if registrar
            else ""
        )
        + f"  SMS gateway    {os.environ.get('SMS_GATEWAY_URL', settings.sms.gateway_url)}\n"
        f"  metrics        {api}/metrics, worker http://{settings.worker.metrics_host}:{settings.worker.metrics_port}/metrics\n"
        f"  billing DB     {settings.database.url}\n",
        flush=True,
    )
    await supervisor.stopping.wait()
    if supervisor.failed:
        print(f"[devstack] {supervisor.failed}; stopping the rest", flush=True)
    await supervisor.stop_all()
    return 1 if supervisor.failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
