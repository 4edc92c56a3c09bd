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

from bench.floor import floor_rate
from bench.harness import bench_stack, cmms_records
from bench.seed import Rows, bulk_insert
from billing.models import Account, AccountStatus, Customer, CustomerClass, Product
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
        (CustomerClass, [CustomerClass(customer_class_id="bench", name="Bench", custom_fields=["profileName"])]),
        (
            Customer,
            [
                Customer(
                    customer_id=CUSTOMER,
                    name="Bench",
                    customer_class_id="bench",
                    custom_fields={"profileName": "Residential"},
                )
            ],
        ),
        (Product, [Product(product_id="bench", name="Bench")]),
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
    env = {"ROLLOUT_WINDOW": str(args.window)}
    if args.rate > 0:
        env["CMMS_RATE_LIMIT_PER_SECOND"] = str(args.rate)
    async with (
        bench_stack(**env) as stack,
        httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api,
        httpx.AsyncClient(base_url=stack.sim_url, timeout=60) as sim,
    ):
        settings = Settings(
            _env_file=None, temporal_address=stack.temporal_address, database_url=stack.env["DATABASE_URL"]
        )
        seed_billing(settings.database, args.accounts)
        await seed_cmms(sim, args.accounts, settings.provisioning.default_domain)
        if args.warm:
            warm, _ = await roll_out(api, "Residential")
            print(f"warm-up rollout (creates {args.accounts} account workflows): {warm:.1f} s")
        await report(api, sim, settings, args)


async def report(api: httpx.AsyncClient, sim: httpx.AsyncClient, settings: Settings, args: argparse.Namespace) -> None:
    (await sim.delete("/_sim/stats")).raise_for_status()
    elapsed, progress = await roll_out(api, "Business")
    stats = (await sim.get("/_sim/stats")).json()
    records = await cmms_records(sim)
    stale = sum(1 for r in records if r["account_id"].startswith("roll-") and r["profile"] != "Business")
    runs, largest = await largest_history(settings)
    print(f"rollout of {args.accounts} accounts, CMMS limit {args.rate or 'none'}/s, window {args.window}:")
    print(f"  {elapsed:.1f} s ({args.accounts / elapsed:.1f} accounts/s); progress {progress}")
    if args.rate > 0:
        bound = 1.2 * args.accounts / args.rate
        met = "met" if elapsed <= bound else "MISSED"
        print(f"  target <= 1.2 x {args.accounts} / {args.rate:g} = {bound:.0f} s: {met}")
        verdict = "met" if stats["max_per_second"] <= args.rate else "EXCEEDED"
        print(f"  CMMS calls in the busiest second: {stats['max_per_second']} (limit {args.rate:g}: {verdict})")
    print(f"  CMMS calls {stats['provisioning_calls']}, writes {stats['writes']}; stale records after: {stale}")
    print(f"  rollout runs (continue-as-new): {runs}; largest history {largest} events (target < 10,000)")
    if args.floor:
        client = await connect(settings.temporal)
        await floor_rate(client, workflows=100, steps=1, concurrency=args.window)  # warm-up
        floor = await floor_rate(client, workflows=1000, steps=1, concurrency=args.window)
        ratio = (args.accounts / elapsed) / floor
        print(f"  engine floor (no-op workflow, 1 activity, {args.window} in flight): {floor:.1f} workflows/s")
        print(f"  rollout throughput = {ratio:.2f} x the floor")


if __name__ == "__main__":
    asyncio.run(main())
