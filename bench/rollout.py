"""Customer rollout benchmark (customized provisioning): a customer's accounts re-provisioned under the CMMS rate limit.

    .venv/bin/python -m bench.rollout --accounts 5000 --rate 50

Starts its own system (bench/harness.py: Temporal dev server on file-backed SQLite with WAL, the CMMS
simulator, the worker and the API as separate processes), with `CMMS_RATE_LIMIT_PER_SECOND=--rate`, then:
1. seeds `--accounts` accounts of one customer in bulk, straight into the billing database, and their
   CMMS records straight into the simulator (`--warm` instead runs a first, untimed rollout, so that
   every account's workflow already exists when the timed one starts);
2. `PATCH /v1/customers/{id}` changes the customer's profile; the time runs from the request until
   `GET /v1/customers/{id}/rollout` says completed. Target: at most 1.2 x accounts / rate seconds;
3. the simulator's `GET /_sim/stats` gives the most CMMS calls served in any one second (target: <= rate);
4. every run of the rollout workflow (it continues-as-new) is read back: the largest history, in events
   (target: under 10,000); and every CMMS record is checked to hold the new profile.
`--floor` also measures the engine's floor on the same server: no-op workflows of one activity (an account
push's shape), `--window` in flight; compare it with a run at `--rate 0` (no limit).
"""

import argparse
import asyncio
import time

import httpx

from bench.cmms_limit import (
    LimitedStack,
    floor_report,
    limit_report,
    limited_stack,
    reset_stats,
    sim_stats,
    warm_floor,
)
from bench.harness import cmms_records, cpu_ms_per_run, cpu_per_run
from bench.seed import Rows, bulk_insert, customer_rows
from billing.models import Account, AccountStatus
from contracts.rollouts import rollout_workflow_id
from core.settings import DatabaseSettings, Settings
from core.temporal import connect

ADMIN = {"Authorization": "Bearer dev-admin-key"}
CMMS = {"Authorization": "Bearer dev-cmms-token"}
CUSTOMER = "bench-rollout"


def account_id(index: int) -> str:
    return f"roll-{index:06d}"


def seed_billing(database: DatabaseSettings, accounts: int) -> None:
    """Bulk rows, no API: a class enabling the custom fields, the customer, a product, its accounts."""
    rows: Rows = [
        *customer_rows(CUSTOMER, "bench"),
        (
            Account,
            [
                Account(
                    account_id=account_id(i),
                    customer_id=CUSTOMER,
                    product_id="bench",
                    sip_password=f"Bench-Pass-{i:06d}",
                    status=AccountStatus.active,
                    created_by="bench",
                )
                for i in range(accounts)
            ],
        ),
    ]
    bulk_insert(database, rows)


async def seed_cmms(sim: httpx.AsyncClient, accounts: int, domain: str) -> None:
    """The records the accounts' orders would have made, written to the simulator directly."""
    gate = asyncio.Semaphore(50)

    async def one(index: int) -> None:
        body = {"password": f"Bench-Pass-{index:06d}", "profile": "Residential", "domain": domain}
        async with gate:
            (await sim.put(f"/api/v1/accounts/{account_id(index)}", json=body, headers=CMMS)).raise_for_status()

    await asyncio.gather(*(one(i) for i in range(accounts)))


async def roll_out(api: httpx.AsyncClient, profile: str) -> tuple[float, dict[str, object]]:
    """Change the customer's profile through the API; seconds until its rollout completed, and the progress."""
    started = time.perf_counter()
    answer = await api.patch(
        f"/v1/customers/{CUSTOMER}", json={"custom_fields": {"profileName": profile}}, headers=ADMIN
    )
    answer.raise_for_status()
    revision = answer.json()["revision"]
    while True:
        progress: dict[str, object] = (await api.get(f"/v1/customers/{CUSTOMER}/rollout", headers=ADMIN)).json()
        if progress.get("revision") == revision and progress.get("status") == "completed":
            return time.perf_counter() - started, progress
        await asyncio.sleep(0.25)


async def largest_history(settings: Settings) -> tuple[int, int]:
    """How many runs the rollout took, and the most events any one of them has."""
    client = await connect(settings.temporal)
    largest, runs = 0, 0
    async for execution in client.list_workflows(f"WorkflowId = '{rollout_workflow_id(CUSTOMER)}'"):
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        largest, runs = max(largest, len(history.events)), runs + 1
    return runs, largest


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=50.0, help="the CMMS rate limit, calls/s (0: none)")
    parser.add_argument("--window", type=int, default=50, help="account syncs in flight (ROLLOUT_WINDOW)")
    parser.add_argument("--warm", action="store_true", help="a first untimed rollout creates the account workflows")
    parser.add_argument("--floor", action="store_true", help="also measure the engine floor")
    args = parser.parse_args()
    async with limited_stack(args.rate, ROLLOUT_WINDOW=str(args.window)) as running:
        api, sim, settings = running.api, running.sim, running.settings
        seed_billing(settings.database, args.accounts)
        await seed_cmms(sim, args.accounts, settings.provisioning.default_domain)
        if args.warm:
            warm, _ = await roll_out(api, "Residential")
            print(f"warm-up rollout (creates {args.accounts} account workflows): {warm:.1f} s")
        await report(running, args)


async def report(running: LimitedStack, args: argparse.Namespace) -> None:
    api, sim, settings = running.api, running.sim, running.settings
    await reset_stats(sim)
    cpu_before = running.stack.cpu()
    elapsed, progress = await roll_out(api, "Business")
    cpu_after = running.stack.cpu()
    stats = await sim_stats(sim)
    records = await cmms_records(sim)
    stale = sum(1 for r in records if r["account_id"].startswith("roll-") and r["profile"] != "Business")
    runs, largest = await largest_history(settings)
    print(f"rollout of {args.accounts} accounts, CMMS limit {args.rate or 'none'}/s, window {args.window}:")
    print(f"  {elapsed:.1f} s ({args.accounts / elapsed:.1f} accounts/s); progress {progress}")
    for line in limit_report(args.accounts, elapsed, args.rate, stats):
        print(f"  {line}")
    print(f"  CMMS calls {stats['provisioning_calls']}, writes {stats['writes']}; stale records after: {stale}")
    print(f"  CPU ms per account: {cpu_per_run(cpu_before, cpu_after, args.accounts)}")
    print(f"  rollout runs (continue-as-new): {runs}; largest history {largest} events (target < 10,000)")
    if args.floor:
        floor = await warm_floor(running, args.window)
        cpu_ms = sum(cpu_ms_per_run(cpu_before, cpu_after, args.accounts).values())
        for line in floor_report("rollout", args.accounts / elapsed, cpu_ms, floor):
            print(f"  {line}")


if __name__ == "__main__":
    asyncio.run(main())
