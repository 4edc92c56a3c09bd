"""Messaging-by-wallet benchmark: many accounts holding wallets, each with its account workflow.

    .venv/bin/python -m bench.wallets --accounts 10000

Starts its own system (bench/harness.py: Temporal dev server on file-backed SQLite with WAL, the CMMS
simulator, the worker and the API as separate processes), then:
1. seeds `--accounts` accounts with messaging wallets in bulk, straight into the billing database,
   under a product whose messaging policy has `push_events` on; `--suspended` of them hold no units;
2. starts every account's workflow (signal-with-start), which pushes the account to the CMMS and then
   sleeps on a durable timer until its wallet expires;
3. expiry lateness: `--expiring` wallets are given expiries spread over the next minute; each one's
   lateness is when the CMMS record's `messaging_enabled` turned false, minus `expires_at`;
4. top-up → resumed: `--top-ups` suspended accounts are topped up through the API, `--concurrency` at a
   time; the latency runs from the request to the CMMS record's `messaging_enabled` turning true;
5. memory: RSS (VmRSS) of the worker, the Temporal server and the API, sampled throughout.
"""

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import create_engine, update
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench.harness import BenchStack, bench_stack, cmms_records, stack_settings
from bench.memory import mib, rss_now, sample_memory
from bench.seed import Rows, bulk_insert
from bench.stats import percentile, summary_ms
from billing.db import sync_url
from billing.messaging import MESSAGING, messaging_state
from billing.models import (
    Account,
    AccountStatus,
    Customer,
    CustomerClass,
    Product,
    PushStatus,
    Wallet,
    WalletLot,
)
from contracts.provisioning import account_workflow_id
from core.gateway import account_changed
from core.settings import DatabaseSettings, Settings
from core.temporal import connect

ADMIN = {"Authorization": "Bearer dev-admin-key"}
CMMS = {"Authorization": "Bearer dev-cmms-token"}
# A flip's time is the simulator's stamp on the record (`updated_at`, set as its version rises): the
# reads only find the flip, so they can be few and take none of the CPU the flip itself needs.
POLL_SECONDS = 0.5


def account_id(index: int) -> str:
    return f"bench-{index:06d}"


def password(index: int) -> str:
    return f"Bench-Pass-{index:06d}"


def catalog_rows() -> Rows:
    """A class, a customer and a product whose messaging policy pushes wallet events to the CMMS."""
    policies = {MESSAGING: {"push_events": True}}
    return [
        (CustomerClass, [CustomerClass(customer_class_id="bench", name="Bench")]),
        (Customer, [Customer(customer_id="bench", name="Bench", customer_class_id="bench")]),
        (Product, [Product(product_id="bench", name="Bench", service_policies=policies)]),
    ]


def account_rows(
    indices: range, expires_at: Callable[[int], datetime], funded: Callable[[int], bool], pushed: bool = False
) -> Rows:
    """The accounts `indices` of the bench customer, each with a messaging wallet expiring at
    `expires_at(i)` and, when `funded(i)`, one top-up's lot of units expiring with it. `pushed`: billing
    shows each as its first push to the CMMS would have left it (in sync, version 1, messaging as funded)."""
    return [
        (
            Account,
            [
                Account(
                    account_id=account_id(i),
                    customer_id="bench",
                    product_id="bench",
                    sip_password=password(i),
                    status=AccountStatus.active,
                    created_by="bench",
                    provisioning_state=PushStatus.ok if pushed else PushStatus.in_progress,
                    cmms_version=1 if pushed else None,
                    messaging_state=messaging_state(funded(i)) if pushed else None,
                )
                for i in indices
            ],
        ),
        (
            Wallet,
            [
                Wallet(
                    account_id=account_id(i),
                    service=MESSAGING,
                    balance=100 if funded(i) else 0,
                    expires_at=expires_at(i),
                )
                for i in indices
            ],
        ),
        (
            WalletLot,  # a funded wallet's units: one top-up
            [
                WalletLot(account_id=account_id(i), service=MESSAGING, remaining=100, expires_at=expires_at(i))
                for i in indices
                if funded(i)
            ],
        ),
    ]


def seed(database: DatabaseSettings, accounts: int, suspended: int) -> None:
    """Bulk rows, no API: a class, a customer, a product that pushes messaging, accounts and their wallets."""
    expires_at = datetime.now(UTC) + timedelta(days=30)
    rows = catalog_rows() + account_rows(range(accounts), lambda _: expires_at, lambda i: i >= suspended)
    bulk_insert(database, rows)


async def record(sim: httpx.AsyncClient, account: str) -> dict[str, object] | None:
    response = await sim.get(f"/api/v1/accounts/{account}", headers=CMMS)
    found: dict[str, object] | None = response.json() if response.status_code == 200 else None
    return found


async def wait_messaging(
    sim: httpx.AsyncClient, account: str, enabled: bool, deadline: float, slowest: float = POLL_SECONDS
) -> float | None:
    """When (wall clock) the account's CMMS record turned `messaging_enabled == enabled`, or None.

    The reads come every POLL_SECONDS, each wait doubling up to `slowest`: the time is the record's own
    stamp, so sparse reads lose nothing, and thousands of late flips do not flood the simulator."""
    pause = POLL_SECONDS
    while time.time() < deadline:
        found = await record(sim, account)
        if found is not None and found["messaging_enabled"] is enabled:
            return datetime.fromisoformat(str(found["updated_at"])).timestamp()
        await asyncio.sleep(pause)
        pause = min(pause * 2, max(slowest, POLL_SECONDS))
    return None


async def start_all(stack: BenchStack, settings: Settings, accounts: int, concurrency: int) -> float:
    """Signal-with-start every account's workflow, and wait until the CMMS holds every account; seconds taken."""
    client = await connect(settings.temporal)
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()

    async def one(index: int) -> None:
        async with gate:
            await account_changed(client, settings.temporal.task_queue, account_id(index))

    await asyncio.gather(*(one(i) for i in range(accounts)))
    async with httpx.AsyncClient(base_url=stack.sim_url, timeout=60) as sim:
        while len(await cmms_records(sim)) < accounts:
            if stack.processes["worker"].returncode is not None:
                raise RuntimeError("the worker exited (BENCH_KEEP=1 keeps its log)")
            await asyncio.sleep(1)
    return time.perf_counter() - started


async def expiry_lateness(
    stack: BenchStack, settings: Settings, first: int, count: int
) -> tuple[list[float], dict[str, datetime]]:
    """Give `count` funded wallets expiries over the next minute, tell their workflows; the lateness of
    each flip, and each account's expiry."""
    now = datetime.now(UTC)
    due = {account_id(first + i): now + timedelta(seconds=20 + 40 * i / count) for i in range(count)}
    engine = create_engine(sync_url(settings.database.url))
    with engine.begin() as conn:
        for account, expires_at in due.items():
            conn.execute(
                update(Wallet).where(Wallet.account_id == account).values(expires_at=expires_at)  # type: ignore[arg-type]
            )
            conn.execute(
                update(WalletLot).where(WalletLot.account_id == account).values(expires_at=expires_at)  # type: ignore[arg-type]
            )
    engine.dispose()
    client = await connect(settings.temporal)
    await asyncio.gather(*(account_changed(client, settings.temporal.task_queue, account) for account in due))
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=stack.sim_url, timeout=30, limits=limits) as sim:
        return await flip_lateness(sim, due), due


async def flip_lateness(
    sim: httpx.AsyncClient, due: dict[str, datetime], give_up: float = 60, slowest: float = POLL_SECONDS
) -> list[float]:
    """Each account's expiry lateness: its CMMS record's `messaging_enabled` turning false, minus its
    expiry in `due` (inf: not within `give_up` seconds). Each account's reads start a second after its
    expiry, and slow down to one every `slowest` seconds (wait_messaging)."""

    async def one(account: str, expires_at: datetime) -> float:
        await asyncio.sleep(max(0.0, expires_at.timestamp() - time.time() + 1))
        flipped = await wait_messaging(sim, account, False, expires_at.timestamp() + give_up, slowest)
        return float("inf") if flipped is None else max(0.0, flipped - expires_at.timestamp())

    return await asyncio.gather(*(one(a, e) for a, e in due.items()))


async def lateness_breakdown(client: Client, due: dict[str, datetime]) -> dict[str, list[float]]:
    """Where each expiry's lateness went, from its account workflow's history: the timer firing after
    the expiry, the push activity being dispatched to the worker, and the push itself."""
    parts: dict[str, list[float]] = {"timer fired": [], "push dispatched": [], "push ran": []}
    for account, expires_at in due.items():
        handle = client.get_workflow_handle(account_workflow_id(account))
        after = (e async for e in handle.fetch_history_events() if e.event_time.ToDatetime(tzinfo=UTC) >= expires_at)
        # In order: the timer firing, then the push's start, then its completion.
        fired = await _next_time(after, "timer_fired_event_attributes")
        started = await _next_time(after, "activity_task_started_event_attributes")
        completed = await _next_time(after, "activity_task_completed_event_attributes")
        if fired is None or started is None or completed is None:
            continue  # another run holds it (continue-as-new): rare, left out
        parts["timer fired"].append((fired - expires_at).total_seconds())
        parts["push dispatched"].append((started - fired).total_seconds())
        parts["push ran"].append((completed - started).total_seconds())
    return parts


async def _next_time(events: AsyncIterator[HistoryEvent], kind: str) -> datetime | None:
    """The time of the next event of `kind` (an attributes field name), consuming `events` up to it."""
    async for event in events:
        if event.WhichOneof("attributes") == kind:
            return event.event_time.ToDatetime(tzinfo=UTC)
    return None


async def top_up_latency(stack: BenchStack, count: int, concurrency: int) -> list[float]:
    gate = asyncio.Semaphore(concurrency)
    expires_at = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    async with (
        httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api,
        httpx.AsyncClient(base_url=stack.sim_url, timeout=30) as sim,
    ):

        async def one(index: int) -> float:
            async with gate:
                started = time.time()
                response = await api.post(
                    f"/v1/accounts/{account_id(index)}/wallets/messaging/top-ups",
                    json={"amount": 10, "expires_at": expires_at},
                    headers=ADMIN | {"Idempotency-Key": f"bench-{index}"},
                )
                response.raise_for_status()
                resumed = await wait_messaging(sim, account_id(index), True, started + 60)
                return float("inf") if resumed is None else resumed - started

        return await asyncio.gather(*(one(i) for i in range(count)))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--suspended", type=int, default=300, help="accounts whose wallet starts empty")
    parser.add_argument("--expiring", type=int, default=300, help="wallets that expire during the run")
    parser.add_argument("--top-ups", type=int, default=300, help="top-ups of suspended accounts")
    parser.add_argument("--concurrency", type=int, default=10, help="top-ups in flight")
    parser.add_argument("--start-concurrency", type=int, default=100, help="workflow starts in flight")
    args = parser.parse_args()
    assert args.top_ups <= args.suspended and args.suspended + args.expiring <= args.accounts

    async with bench_stack() as stack:
        settings = stack_settings(stack)
        seed(settings.database, args.accounts, args.suspended)
        peaks: dict[str, float] = {}
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_memory(stack, peaks, stop))

        took = await start_all(stack, settings, args.accounts, args.start_concurrency)
        print(f"{args.accounts} account workflows started and pushed in {took:.0f} s ({args.accounts / took:.1f}/s)")
        idle = rss_now(stack)
        print("RSS with every account's workflow asleep on its timer: " + mib(idle))

        latency = await top_up_latency(stack, args.top_ups, args.concurrency)
        lateness, due = await expiry_lateness(stack, settings, args.suspended, args.expiring)
        stop.set()
        await sampler
        missed = sum(1 for s in lateness if s == float("inf"))
        print(f"expiry lateness (expires_at → CMMS suspended): {summary_ms(lateness)}; missed {missed}")
        print(f"  p99 {percentile(lateness, 99):.2f} s (target ≤ 2 s)")
        for part, samples in (await lateness_breakdown(await connect(settings.temporal), due)).items():
            print(f"  {part}: {summary_ms(samples)}")
        print(f"top-up → CMMS resumed: {summary_ms(latency)}; p95 {percentile(latency, 95) * 1000:.0f} ms")
        print("peak RSS during the run: " + mib(peaks))


if __name__ == "__main__":
    asyncio.run(main())
