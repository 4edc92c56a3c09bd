"""The SIP registrar: how fast a real Kamailio answers REGISTERs from the table this service keeps, and
how soon a change in billing is a REGISTER accepted.

    .venv/bin/python -m bench.sip --subscribers 10000 --registers 20000 --changes 100

1. Throughput: `--subscribers` rows written through `clients.sip_registrar` into a SQLite registrar
   database (PostgreSQL with `--postgres-url`), Kamailio (`devstack/kamailio/kamailio.cfg`) on a free
   port, and sipp REGISTERing `--registers` of them (each one a challenge and an authenticated
   REGISTER, two round trips and one table read) at `--rate` a second at most: REGISTERs answered 200
   per second.
2. Change → REGISTER accepted: the whole system (bench/harness.py) with SIP_REGISTRAR=kamailio on the
   same table, `--changes` password changes (`PATCH /v1/accounts/{id}`), each timed from the request
   until sipp's REGISTER with the new password is answered 200 (sipp is started again every
   `POLL_SECONDS` meanwhile). Reports p50/p95/p99.
"""

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.harness import bench_stack
from bench.rollout import ADMIN, account_id, seed_billing
from bench.stats import summary_ms
from clients.sip_registrar import async_url, ha1, ha1b
from core.settings import Settings
from devstack.kamailio import (
    answers_sip_soon,
    kamailio_argv,
    kamailio_binary,
    prepare_database,
    sipp_binary,
    sipp_register_argv,
)
from devstack.ports import free_port

HERE = Path(__file__).resolve().parent
DOMAIN = "bench.example"
POLL_SECONDS = 0.02


async def seed_subscribers(database_url: str, count: int) -> list[tuple[str, str]]:
    """`count` subscribers `sub-<n>`@DOMAIN in one transaction; returns (username, password) pairs."""
    await prepare_database(database_url)
    pairs = [(f"sub-{i:06d}", f"Sub-Pass-{i:06d}") for i in range(count)]
    engine = create_async_engine(async_url(database_url))  # one bulk load, not a provisioning write
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM subscriber WHERE username LIKE 'sub-%'"))
            await conn.execute(
                text(
                    "INSERT INTO subscriber (username, domain, password, ha1, ha1b)"
                    " VALUES (:username, :domain, '', :ha1, :ha1b)"
                ),
                [
                    {"username": u, "domain": DOMAIN, "ha1": ha1(u, DOMAIN, p), "ha1b": ha1b(u, DOMAIN, p)}
                    for u, p in pairs
                ],
            )
    finally:
        await engine.dispose()
    return pairs


async def start_kamailio(database_url: str, port: int, log: Path) -> asyncio.subprocess.Process:
    binary = kamailio_binary()
    assert binary is not None, "apt-get install kamailio kamailio-sqlite-modules kamailio-postgres-modules"
    process = await asyncio.create_subprocess_exec(
        *kamailio_argv(binary, database_url, port), stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT
    )
    deadline = time.monotonic() + 20
    while not await answers_sip_soon(port):
        if process.returncode is not None or time.monotonic() > deadline:
            output = await asyncio.to_thread(log.read_text)
            raise RuntimeError(f"kamailio did not start: {output[-2000:]}")
    return process


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        await process.wait()


async def throughput(port: int, pairs: list[tuple[str, str]], registers: int, rate: int, work: Path) -> str:
    sipp = sipp_binary()
    assert sipp is not None, "apt-get install sip-tester"
    users = work / "users.csv"
    # sipp expands an [authentication …] keyword found in a field.
    lines = (f"{u};{DOMAIN};[authentication username={u} password={p}]\n" for u, p in pairs)
    users.write_text("SEQUENTIAL\n" + "".join(lines))
    argv = [str(sipp), "-sf", str(HERE / "register_many.xml"), f"127.0.0.1:{port}", "-i", "127.0.0.1"]
    argv += ["-inf", str(users), "-m", str(registers), "-r", str(rate), "-l", "200", "-nostdin", "-timeout", "300s"]
    argv += ["-trace_stat", "-stf", str(work / "stat.csv")]
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=work, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    status = await process.wait()
    elapsed = time.perf_counter() - started
    return (
        f"{registers} REGISTERs of {len(pairs)} subscribers in {elapsed:.1f} s: {registers / elapsed:.0f}/s"
        f" answered (sipp exit {status}: {'every one 200' if status == 0 else 'some refused or lost'})"
    )


async def registers(port: int, username: str, password: str, work: Path) -> bool:
    sipp = sipp_binary()
    assert sipp is not None
    process = await asyncio.create_subprocess_exec(
        *sipp_register_argv(
            sipp,
            port,
            domain=Settings(_env_file=None).provisioning.default_domain,
            username=username,
            password=password,
            timeout_seconds=2,
        ),
        cwd=work,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await process.wait() == 0


async def change_to_register(api: httpx.AsyncClient, port: int, account: str, step: int, work: Path) -> float:
    password = f"Bench-Sip-{step:08d}"
    started = time.perf_counter()
    (await api.patch(f"/v1/accounts/{account}", json={"password": password}, headers=ADMIN)).raise_for_status()
    while not await registers(port, account, password, work):  # noqa: ASYNC110 - sipp has nothing to wait on
        await asyncio.sleep(POLL_SECONDS)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--registers", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=5_000, help="REGISTERs started per second, at most")
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--postgres-url", default=None, help="the registrar's database (default: SQLite)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cmms-bench-sip-"))
    try:
        database_url = args.postgres_url or f"sqlite:///{work / 'sip.sqlite3'}"
        pairs = await seed_subscribers(database_url, args.subscribers)
        port = free_port()
        kamailio = await start_kamailio(database_url, port, work / "kamailio.log")
        try:
            print(await throughput(port, pairs, args.registers, args.rate, work), flush=True)
            if args.changes:
                async with (
                    bench_stack(SIP_REGISTRAR="kamailio", SIP_DATABASE_URL=database_url) as stack,
                    httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api,
                ):
                    settings = Settings(_env_file=None, database_url=stack.env["DATABASE_URL"])
                    seed_billing(settings.database, args.accounts)
                    accounts = [account_id(i) for i in range(args.accounts)]
                    for i, account in enumerate(accounts):  # their workflows start, their rows are written
                        await change_to_register(api, port, account, -1 - i, work)
                    samples = [
                        await change_to_register(api, port, accounts[step % len(accounts)], step, work)
                        for step in range(args.changes)
                    ]
                    print(
                        f"{args.changes} password changes, one at a time, {args.subscribers} other subscribers:\n"
                        f"  PATCH /v1/accounts/{{id}} -> REGISTER with the new password 200: {summary_ms(samples)}",
                        flush=True,
                    )
        finally:
            await stop(kamailio)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
