"""A Kamailio SIP registrar (Debian's `kamailio` with `kamailio-sqlite-modules` or
`kamailio-postgres-modules`) reading the subscriber table the worker keeps, and `sipp` (Debian's
`sip-tester`) playing the phone that registers to it.

`python -m devstack.kamailio` (Compose's `sip-schema` job) makes the registrar's database ready for a
Kamailio that starts next: the PostgreSQL database SIP_DATABASE_URL names, when missing, and its table.

The configuration is `devstack/kamailio/kamailio.cfg`, as shipped; what varies (the port, the database)
is given on Kamailio's command line. The schema must exist before Kamailio starts (its `auth_db` checks
the table's version row): `prepare_database` creates it, as the worker does on first use.
"""

import asyncio
import shutil
import socket
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from clients.sip_registrar import RegistrarUnavailable, SipRegistrar, kamailio_db_url
from core.settings import get_settings

HERE = Path(__file__).resolve().parent / "kamailio"
CONFIG = HERE / "kamailio.cfg"
REGISTER_SCENARIO = HERE / "register.xml"


def kamailio_binary() -> Path | None:
    """Where `kamailio` is (on PATH or in /usr/sbin, as Debian installs it), or None."""
    path = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/usr/local/sbin")
    return Path(path) if path else None


def sipp_binary() -> Path | None:
    path = shutil.which("sipp")
    return Path(path) if path else None


def kamailio_argv(binary: Path, database_url: str, port: int, *, host: str = "127.0.0.1") -> list[str]:
    """Kamailio in the foreground, logging to stderr, on UDP `host:port`, reading `database_url`'s table."""
    argv = [str(binary), "-DD", "-E", "-f", str(CONFIG), "-l", f"udp:{host}:{port}", "-m", "32", "-M", "8"]
    argv += ["-A", f'DBURL="{kamailio_db_url(database_url)}"']
    if make_url(database_url).get_backend_name() == "postgresql":
        argv += ["-A", "WITH_POSTGRES"]
    return argv


def sipp_register_argv(
    binary: Path, port: int, *, domain: str, username: str, password: str, timeout_seconds: float = 5.0
) -> list[str]:
    """One phone's two-step REGISTER (challenge, then credentials) to 127.0.0.1:`port`; exit 0 on 200."""
    return [
        str(binary),
        "-sf",
        str(REGISTER_SCENARIO),
        f"127.0.0.1:{port}",
        "-i",
        "127.0.0.1",
        "-key",
        "domain",
        domain,
        "-s",
        username,
        "-au",
        username,
        "-ap",
        password,
        "-m",
        "1",
        "-timeout",
        f"{timeout_seconds:g}s",
        "-nostdin",
    ]


async def prepare_database(database_url: str, *, create_database: bool = False) -> None:
    """The subscriber table (and Kamailio's version rows), when missing; with `create_database`, a
    PostgreSQL database that is not there yet is created first (on the same server, as its owner)."""
    url = make_url(database_url)
    if create_database and url.get_backend_name() == "postgresql" and url.database:
        server = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(server, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone()
            if found is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
    async with SipRegistrar(database_url) as registrar:
        await registrar.ensure_schema()


def answers_sip(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    """Whether a SIP server on UDP `host:port` answers an OPTIONS (whatever it answers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        branch = f"z9hG4bK{time.monotonic_ns()}"
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@127.0.0.1>;tag={branch}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {branch}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), (host, port))
        try:
            return sock.recv(4096).startswith(b"SIP/2.0 ")
        except OSError:
            return False


async def answers_sip_soon(port: int, host: str = "127.0.0.1") -> bool:
    return await asyncio.to_thread(answers_sip, port, host)


def main() -> int:
    """Make SIP_DATABASE_URL's database and table ready for Kamailio; one line on failure."""
    database_url = get_settings().sip.database_url
    try:
        asyncio.run(prepare_database(database_url, create_database=True))
    except (RegistrarUnavailable, psycopg.Error) as err:  # their words name no password
        print(f"sip-schema: the registrar's database is not ready: {err}", file=sys.stderr)
        return 1
    print("sip-schema: the subscriber table is ready", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
