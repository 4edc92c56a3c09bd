"""MVNO order benchmark: orders/s and latencies through the real API, next to the engine's floor.

    .venv/bin/python -m bench.orders --orders 300 --concurrency 50

Starts its own system (bench/harness.py), so it needs nothing running. Reports:
- the engine floor: a no-op workflow with 3 activities (the order's shape), same server, same run;
- orders/s submitting `--orders` through `POST /v1/orders`, `--concurrency` in flight, each until its
  workflow completes, and the ratio to the floor;
- end-to-end latency, accepted (202) → the account's record present in the CMMS;
- `POST /v1/orders` response time at a steady `--rate` requests/s (open loop).
"""

import argparse
import asyncio
import secrets
import time
from datetime import datetime

import httpx
from stdnum import luhn

from bench.floor import floor_rate
from bench.harness import BenchStack, bench_stack, cmms_records, cpu_ms_per_run, cpu_per_run
from bench.stats import percentile, summary_ms
from contracts.orders import MvnoOrderResult
from core.gateway import result_once_started
from core.settings import Settings
from core.temporal import connect

ADMIN = {"Authorization": "Bearer dev-admin-key"}
WEBSITE = {"Authorization": "Bearer dev-website-key"}


def imei() -> str:
    body = "35" + "".join(secrets.choice("0123456789") for _ in range(12))
    return body + luhn.calc_check_digit(body)


def order(index: int, run: str) -> dict[str, object]:
    return {
        "order_id": f"{run}-{index}",
        "customer_id": "bench-customer",
        "product_id": "bench-product",
        "account": {"imei": imei(), "account_id": f"{run}-acct-{index}"},
    }


async def seed(api: httpx.AsyncClient) -> None:
    await api.post("/v1/customer-classes", json={"customer_class_id": "bench", "name": "Bench"}, headers=ADMIN)
    body = {"customer_id": "bench-customer", "name": "Bench", "customer_class_id": "bench"}
    await api.post("/v1/customers", json=body, headers=ADMIN)
    await api.post("/v1/products", json={"product_id": "bench-product", "name": "Bench"}, headers=ADMIN)


async def cmms_created_at(sim_url: str) -> dict[str, float]:
    """When the CMMS created each account it holds (its records carry the time of their last change,
    and an order's record changes once): read once at the end, so nothing polls during the run."""
    async with httpx.AsyncClient(base_url=sim_url, timeout=60) as sim:
        records = await cmms_records(sim)
    return {r["account_id"]: datetime.fromisoformat(r["updated_at"]).timestamp() for r in records}


async def throughput(stack: BenchStack, api: httpx.AsyncClient, count: int, concurrency: int) -> dict[str, float]:
    client = await connect(Settings(_env_file=None, temporal_address=stack.temporal_address).temporal)
    run = f"tp{secrets.token_hex(3)}"
    accepted: dict[str, float] = {}  # wall clock, as the simulator's timestamps
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        body = order(index, run)
        async with gate:
            response = await api.post("/v1/orders", json=body, headers=WEBSITE)
            response.raise_for_status()
            accepted[f"{run}-acct-{index}"] = time.time()
            await result_once_started(client, response.json()["workflow_id"], MvnoOrderResult)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    created = await cmms_created_at(stack.sim_url)
    latencies = [created[a] - t for a, t in accepted.items()]
    print(f"  end-to-end (202 → CMMS record): {summary_ms(latencies)}")
    return {"orders_per_s": count / elapsed, "e2e_p99_s": percentile(latencies, 99)}


async def steady_posts(stack: BenchStack, api: httpx.AsyncClient, rate: float, seconds: float) -> list[float]:
    """Open loop: one POST every 1/rate s, whatever the answers' speed; returns response times."""
    run = f"st{secrets.token_hex(3)}"
    times: list[float] = []

    async def one(index: int) -> None:
        started = time.perf_counter()
        response = await api.post("/v1/orders", json=order(index, run), headers=WEBSITE)
        response.raise_for_status()
        times.append(time.perf_counter() - started)

    tasks = []
    begin = time.perf_counter()
    for index in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, begin + index / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s for the POST latency phase")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the POST latency phase")
    parser.add_argument(
        "--database-url", help="billing on this (empty) database, e.g. PostgreSQL, instead of a scratch SQLite file"
    )
    args = parser.parse_args()
    billing = {"DATABASE_URL": args.database_url} if args.database_url else {}
    async with bench_stack(**billing) as stack, httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api:
        await seed(api)
        client = await connect(Settings(_env_file=None, temporal_address=stack.temporal_address).temporal)
        await floor_rate(client, workflows=50, steps=3, concurrency=args.concurrency)  # warm-up
        before = stack.cpu()
        floor = await floor_rate(client, workflows=args.orders, steps=3, concurrency=args.concurrency)
        print(f"engine floor (no-op workflow, 3 activities, {args.concurrency} in flight): {floor:.1f} workflows/s")
        between = stack.cpu()
        print(f"  CPU ms per workflow: {cpu_per_run(before, between, args.orders)}")
        print(f"orders ({args.orders}, {args.concurrency} in flight):")
        result = await throughput(stack, api, args.orders, args.concurrency)
        ratio = result["orders_per_s"] / floor
        print(f"  {result['orders_per_s']:.1f} orders/s = {ratio:.2f} x the engine floor")
        after = stack.cpu()
        print(f"  CPU ms per order: {cpu_per_run(between, after, args.orders)}")
        # Both phases keep the two cores busy, so the ratio of rates is about the ratio of CPU per run:
        # whatever CPU an order costs beyond the no-op's comes straight off the ratio.
        ceiling = sum(cpu_ms_per_run(before, between, args.orders).values()) / sum(
            cpu_ms_per_run(between, after, args.orders).values()
        )
        print(f"  CPU-bound ceiling of that ratio (the floor's CPU per workflow / CPU per order): {ceiling:.2f}")
        times = await steady_posts(stack, api, args.rate, args.seconds)
        print(f"POST /v1/orders at {args.rate:.0f} requests/s for {args.seconds:.0f} s: {summary_ms(times)}")


if __name__ == "__main__":
    asyncio.run(main())
