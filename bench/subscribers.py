"""100,000 subscribers on `make run`'s embedded default: memory, the Temporal database, expiry lateness,
and a change reaching the CMMS while the expiries fire.

    .venv/bin/python -m bench.subscribers --subscribers 100000 --expiring 10000 --within 3600

Starts its own system (bench/harness.py: Temporal dev server on file-backed SQLite with WAL, the CMMS
simulator, the worker and the API as separate processes, `ACCOUNT_WAKE_SWEEP_SECONDS=--sweep`, 300 as
`make run` has it), then:
1. seeds `--subscribers` accounts in bulk, straight into billing, as bench.wallets does (one customer,
   a product whose messaging policy pushes wallet events, a funded messaging wallet each), and shown
   as provisioning leaves them (in sync, CMMS version 1, messaging active). `--expiring` of them have
   their wallet and its lot expire spread evenly over `--within` seconds from `--lead` seconds after
   seeding (the default leaves the sweep below time for 10,000 starts; expiries beyond the horizon then
   are the next sweep's); the rest expire in 30 days, beyond the idle-timer horizon (no workflow).
   Seeding is not timed;
2. seeds the CMMS simulator with every account's record as the first push would have left it (version
   1, messaging enabled), so that an expiry's push and a change are updates, not creates. Written to the
   simulator's SQLite file through its own Store (simulators/cmms/store.py; WAL, so beside the running
   simulator): about 7 s for 100,000, where 100,000 HTTP PUTs would take minutes;
3. restarts the worker, so that its wake sweep (services/account_wakes.py, which runs at start and then
   every `--sweep` s) sees the seeded wallets at once, as after `make run` restarted on this data; waits
   until the account workflows running cover every expiry within the idle-timer horizon, then reports the
   RSS (VmRSS) of the Temporal server, the worker and the API, and the size of the Temporal database
   (temporal.db with its -wal and -shm);
4. while the expiries fire: each expiry's lateness, from `expires_at` to the CMMS record's
   `messaging_enabled` turning false (the simulator's `updated_at` stamp, as bench.wallets measures it;
   missed: not within GIVE_UP s), and where it went for a sample (`--breakdown` accounts, from their
   histories: timer fired, push dispatched, push ran); and every `--change-every` s a change (`PATCH
   /v1/accounts/{id}`, as bench.account_changes makes them) to a random account that is not expiring,
   timed from the request until the CMMS record's version rose (its stamp). The reads back off (to one
   every SLOWEST_POLL s an account), so that late pushes are not buried under the bench's own reads;
5. peak RSS sampled throughout. Each figure is printed against its target (server ≤ 1 GiB, worker ≤ 512
   MiB, API ≤ 256 MiB, lateness p99 ≤ 2 s, change p99 ≤ 1 s) with met/MISSED; the harness prints the
   CPU seconds each process used.
"""

import argparse
import asyncio
import contextlib
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from temporalio.client import Client

from bench.account_changes import change
from bench.harness import BenchStack, bench_stack, stack_settings
from bench.memory import mib, rss_now, sample_memory
from bench.seed import bulk_insert
from bench.stats import percentile, summary_ms
from bench.wallets import account_id, account_rows, catalog_rows, flip_lateness, lateness_breakdown, password
from contracts.workflows import ACCOUNT
from core.settings import DatabaseSettings
from core.temporal import connect
from simulators.cmms.store import Store, StoredAccount

MIB_TARGETS = {"temporal": 1024.0, "worker": 512.0, "api": 256.0}
LATENESS_TARGET = 2.0  # seconds, p99
CHANGE_TARGET = 1.0  # seconds, p99
CHUNK = 10_000  # accounts per bulk insert: the bench's own memory stays small at 100,000
# The reads of the CMMS slow down to one every SLOWEST_POLL seconds per account: when pushes fall behind,
# thousands of late accounts polled fast would take the CPU the pushes need (the times are the records'
# own stamps, so sparse reads cost no precision). An expiry not seen within GIVE_UP seconds is missed.
SLOWEST_POLL = 5.0
GIVE_UP = 300.0
FAR = timedelta(days=30)  # a wallet expiring beyond the idle-timer horizon


def seed_billing(database: DatabaseSettings, subscribers: int, due: dict[str, datetime]) -> None:
    """The accounts, in chunks; the expiring ones (the first indices) expire as `due` says."""
    far = datetime.now(UTC) + FAR
    bulk_insert(database, catalog_rows())
    for first in range(0, subscribers, CHUNK):
        rows = account_rows(
            range(first, min(first + CHUNK, subscribers)),
            lambda i: due.get(account_id(i), far),
            lambda _: True,
            pushed=True,
        )
        bulk_insert(database, rows)


def seed_cmms(state: Path, subscribers: int, domain: str, profile: str) -> None:
    """Every account's record as its first push left it, written through the simulator's own store."""
    store = Store(state)
    now = datetime.now(UTC)
    try:
        for i in range(subscribers):
            store.put_raw(
                StoredAccount(
                    account_id=account_id(i),
                    password=password(i),
                    imei=None,
                    profile=profile,
                    domain=domain,
                    messaging_enabled=True,
                    blocked=False,
                    version=1,
                    updated_at=now,
                )
            )
    finally:
        store.close()


async def running_accounts(client: Client) -> int:
    query = f"WorkflowType = '{ACCOUNT.name}' AND ExecutionStatus = 'Running'"
    return (await client.count_workflows(query)).count


async def restart_worker(stack: BenchStack) -> None:
    worker = stack.processes["worker"]
    worker.terminate()
    await asyncio.wait_for(worker.wait(), 30)
    await stack.start_again("worker")


async def wait_swept(stack: BenchStack, client: Client, expected: int, seconds: float) -> int:
    """Wait until at least `expected` account workflows run (the sweep started them); how many run."""
    deadline = time.monotonic() + seconds
    while (running := await running_accounts(client)) < expected:
        if stack.processes["worker"].returncode is not None:
            raise RuntimeError("the worker exited (BENCH_KEEP=1 keeps its log)")
        if time.monotonic() > deadline:
            print(f"  only {running} of {expected} account workflows running after {seconds:.0f} s")
            return running
        await asyncio.sleep(2)
    return running


def temporal_db_mib(stack: BenchStack) -> float:
    """The Temporal database's size on disk: temporal.db and its WAL and shared-memory files."""
    files = (stack.scratch / name for name in ("temporal.db", "temporal.db-wal", "temporal.db-shm"))
    return sum(f.stat().st_blocks * 512 for f in files if f.exists()) / 2**20


async def changes(
    api: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    accounts: list[str],
    every: float,
    start_at: datetime,
    stop: asyncio.Event,
) -> list[float]:
    """From `start_at` (the first expiry), a change every `every` seconds, each to an account not changed
    before, until `stop`; their latencies."""
    order = random.sample(accounts, len(accounts))
    await asyncio.sleep(max(0.0, start_at.timestamp() - time.time()))
    running: list[asyncio.Task[float]] = []
    step = 0
    while not stop.is_set() and step < len(order):
        running.append(asyncio.create_task(change(api, sim, order[step], step, SLOWEST_POLL)))
        step += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    return list(await asyncio.gather(*running))


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--expiring", type=int, default=10_000, help="wallets expiring during the run")
    parser.add_argument("--within", type=float, default=3600, help="seconds the expiries are spread over")
    parser.add_argument("--lead", type=float, default=600, help="seconds from seeding to the first expiry")
    parser.add_argument("--sweep", type=float, default=300, help="ACCOUNT_WAKE_SWEEP_SECONDS")
    parser.add_argument("--change-every", type=float, default=2, help="seconds between changes")
    parser.add_argument("--breakdown", type=int, default=200, help="expiries whose histories are read")
    args = parser.parse_args()
    assert 0 < args.expiring < args.subscribers

    async with (
        bench_stack(ACCOUNT_WAKE_SWEEP_SECONDS=str(args.sweep)) as stack,
        httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api,
        httpx.AsyncClient(base_url=stack.sim_url, timeout=30, limits=httpx.Limits(max_connections=50)) as sim,
    ):
        settings = stack_settings(stack)
        first = datetime.now(UTC) + timedelta(seconds=args.lead)
        due = {account_id(i): first + timedelta(seconds=args.within * i / args.expiring) for i in range(args.expiring)}
        started = time.perf_counter()
        seed_billing(settings.database, args.subscribers, due)
        provisioning = settings.provisioning
        seed_cmms(
            Path(stack.env["CMMS_SIM_STATE"]),
            args.subscribers,
            provisioning.default_domain,
            provisioning.default_profile,
        )
        print(
            f"seeded {args.subscribers} subscribers ({args.expiring} expiring) in {time.perf_counter() - started:.0f} s"
        )

        peaks: dict[str, float] = {}
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_memory(stack, peaks, stop))
        client = await connect(settings.temporal)
        swept_at = time.perf_counter()
        await restart_worker(stack)
        horizon = datetime.now(UTC) + timedelta(seconds=provisioning.idle_timer_horizon_seconds)
        expected = sum(1 for expires_at in due.values() if expires_at <= horizon)
        running = await wait_swept(stack, client, expected, seconds=max(120.0, args.lead))
        took = time.perf_counter() - swept_at
        print(f"worker restarted: {running} account workflows running {took:.0f} s later")
        if datetime.now(UTC) > first:  # the first expiries' lateness then counts the bench's own set-up
            print(f"  WARNING: the sweep ended after the first expiry: give a longer --lead than {args.lead:.0f} s")
        print(f"RSS with {args.subscribers} subscribers, {running} workflows waiting: " + mib(rss_now(stack)))
        print(f"Temporal database: {temporal_db_mib(stack):.1f} MiB")

        steady = [account_id(i) for i in range(args.expiring, args.subscribers)]
        stop_changes = asyncio.Event()
        changing = asyncio.create_task(changes(api, sim, steady, args.change_every, first, stop_changes))
        lateness = await flip_lateness(sim, due, GIVE_UP, SLOWEST_POLL)
        stop_changes.set()
        latency = await changing
        stop.set()
        await sampler

        missed = sum(1 for s in lateness if s == float("inf"))
        p99 = percentile(lateness, 99)
        print(f"expiry lateness (expires_at → CMMS suspended): {summary_ms(lateness)}; missed {missed}")
        print(f"  p99 {p99:.2f} s (target ≤ {LATENESS_TARGET:.0f} s): {verdict(p99, LATENESS_TARGET)}")
        sample = dict(random.sample(sorted(due.items()), min(args.breakdown, len(due))))
        for part, samples in (await lateness_breakdown(client, sample)).items():
            print(f"  {part}: {summary_ms(samples)}")
        change_p99 = percentile(latency, 99)
        print(f"change → CMMS while the expiries fire: {summary_ms(latency)}")
        print(f"  p99 {change_p99:.2f} s (target ≤ {CHANGE_TARGET:.0f} s): {verdict(change_p99, CHANGE_TARGET)}")
        print(f"Temporal database after the expiries: {temporal_db_mib(stack):.1f} MiB")
        print("peak RSS during the run:")
        for name, target in MIB_TARGETS.items():
            print(f"  {name} {peaks[name]:.0f} MiB (target ≤ {target:.0f} MiB): {verdict(peaks[name], target)}")


if __name__ == "__main__":
    asyncio.run(main())
