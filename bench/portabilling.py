"""Beside PortaBilling: ESPF events at PortaBilling's rate, timed at the receiver and to the CMMS.

    .venv/bin/python -m bench.portabilling --rate 10 --seconds 60

Starts its own system with BILLING_SOURCE=portabilling (bench/harness.py, the PortaBilling simulator
included), creates `--accounts` accounts in the simulator as an administrator would and waits until
the CMMS holds each, then for `--seconds` makes `--rate` changes a second (each account in turn is
blocked or unblocked), each of which the simulator delivers as an ESPF event. Its events pass through
a relay in this process, which times each `POST /v1/portabilling/events` from the request to the
answer; each change is also timed from the administrator's change until the CMMS record's version
rises (the event's way: ESPF → receiver → outbox → account workflow → PortaBilling API reads → CMMS).
Reports p50/p95/p99 of both, and the engine's floor (a one-step no-op workflow) measured in the same run.
"""

import argparse
import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response

from bench.floor import floor_rate
from bench.harness import bench_stack
from bench.stats import summary_ms
from core.settings import Settings
from core.temporal import connect
from devstack.ports import free_port

CMMS = {"Authorization": "Bearer dev-cmms-token"}
# The CMMS record says when it changed (`updated_at`, the simulator's clock, this machine's): polled
# slowly, so that the polling does not take the cores the system under test needs.
POLL_SECONDS = 0.2
SETTLE_SECONDS = 5.0


@asynccontextmanager
async def timing_relay(api_url: str, samples: list[float], port: int) -> AsyncIterator[str]:
    """An HTTP relay that forwards each event to the API and times the API's answer; yields its URL."""
    relay = FastAPI()
    client = httpx.AsyncClient(base_url=api_url, timeout=30)

    @relay.post("/events")
    async def forward(request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type", "date")}
        started = time.perf_counter()
        answer = await client.post("/v1/portabilling/events", content=body, headers=headers)
        samples.append(time.perf_counter() - started)
        return Response(answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type"))

    server = uvicorn.Server(uvicorn.Config(relay, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn's server offers nothing to wait on
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/events"
    finally:
        server.should_exit = True
        await task
        await client.aclose()


async def cmms_record(sim: httpx.AsyncClient, account_id: str) -> dict[str, Any] | None:
    response = await sim.get(f"/api/v1/accounts/{account_id}", headers=CMMS)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


async def until_version_above(sim: httpx.AsyncClient, account_id: str, before: int | None) -> datetime:
    """When the CMMS record's version rose above `before` (by the simulator's clock)."""
    while True:
        record = await cmms_record(sim, account_id)
        if record is not None and (before is None or record["version"] > before):
            return datetime.fromisoformat(record["updated_at"])
        await asyncio.sleep(POLL_SECONDS)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--database-url", default=None, help="default: SQLite in the scratch directory")
    args = parser.parse_args()
    posts: list[float] = []
    relay_port = free_port()
    extra = {"BILLING_SOURCE": "portabilling", "PORTABILLING_SIM_EVENT_URL": f"http://127.0.0.1:{relay_port}/events"}
    if args.database_url:
        extra["DATABASE_URL"] = args.database_url
    async with bench_stack(**extra) as stack:
        assert stack.portabilling_url is not None
        async with (
            timing_relay(stack.api_url, posts, relay_port),
            httpx.AsyncClient(base_url=stack.portabilling_url, timeout=60) as pb,
            httpx.AsyncClient(base_url=stack.sim_url, timeout=60) as sim,
        ):
            product = (await pb.post("/_sim/products", json={"name": "Bench", "messaging_push_events": True})).json()
            customer = (await pb.post("/_sim/customers", json={"name": "Bench", "custom_fields": {}})).json()
            accounts: list[tuple[int, str]] = []
            for n in range(args.accounts):
                created = await pb.post(
                    "/_sim/accounts",
                    json={
                        "id": f"1999{n:07d}",
                        "i_customer": customer["i_customer"],
                        "i_product": product["i_product"],
                        "imei": f"35999{n:010d}",
                        "messaging_units": 100,
                    },
                )
                created.raise_for_status()
                accounts.append((created.json()["i_account"], created.json()["id"]))
            await asyncio.gather(*(until_version_above(sim, account_id, None) for _, account_id in accounts))
            # Each creation is two events (and a repeat now and then), each a push: let them all land, so
            # that what is measured is the changes below, not the tail of the creations.
            while any(e["state"] == "queued" for e in (await pb.get("/_sim/events")).json()):  # noqa: ASYNC110
                await asyncio.sleep(0.5)
            await asyncio.sleep(SETTLE_SECONDS)
            print(f"{len(accounts)} accounts in the CMMS; measuring", flush=True)
            posts.clear()
            samples: list[float] = []
            slowest: list[tuple[float, float]] = []  # (latency, when after the start), for where the tail comes
            blocked: dict[int, bool] = {}

            # A block and the unblock after it may reach the account's workflow together and cost one
            # push that changes nothing: an account's next change waits until its previous one landed.
            landed = {i_account: asyncio.Lock() for i_account, _ in accounts}

            async def change(i_account: int, account_id: str) -> None:
                async with landed[i_account]:
                    record = await cmms_record(sim, account_id)
                    before = record["version"] if record else None
                    blocked[i_account] = not blocked.get(i_account, False)
                    started = datetime.now(UTC)
                    patch = await pb.patch(f"/_sim/accounts/{i_account}", json={"blocked": blocked[i_account]})
                    patch.raise_for_status()
                    landed_at = await until_version_above(sim, account_id, before)
                    samples.append((landed_at - started).total_seconds())
                    slowest.append((samples[-1], time.perf_counter() - began))

            changes = int(args.rate * args.seconds)
            tasks = []
            began = time.perf_counter()
            for step, (i_account, account_id) in zip(range(changes), itertools.cycle(accounts), strict=False):
                await asyncio.sleep(max(0.0, began + step / args.rate - time.perf_counter()))
                tasks.append(asyncio.create_task(change(i_account, account_id)))
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - began
            print("measured; the engine's floor next", flush=True)
            events = [e for e in (await pb.get("/_sim/events")).json() if e["event_type"].startswith("Account/Bl")]
            events += [e for e in (await pb.get("/_sim/events")).json() if e["event_type"].startswith("Account/Unbl")]
            queued = [
                (datetime.fromisoformat(e["delivered_at"]) - datetime.fromisoformat(e["created_at"])).total_seconds()
                for e in events
                if e["delivered_at"]
            ]
            retried = sum(1 for e in events if e["attempts"] > e["deliveries"])
            temporal = Settings(_env_file=None, temporal_address=stack.temporal_address).temporal
            floor = await floor_rate(await connect(temporal), workflows=100, steps=1, concurrency=10)
        print(f"{changes} PortaBilling changes at {args.rate:g}/s over {elapsed:.1f} s ({args.accounts} accounts):")
        print(f"  POST /v1/portabilling/events ({len(posts)} deliveries): {summary_ms(posts)}")
        print(f"  of which emitted -> answered 200 (the simulator's queue and the POST): {summary_ms(queued)}")
        print(f"  events the simulator had to send again (a non-200 or no answer): {retried}")
        print(f"  change in PortaBilling -> CMMS version raised: {summary_ms(samples)}")
        tail = sorted(slowest, reverse=True)[: max(1, len(slowest) // 100)]
        print(
            "  the slowest 1 %, made at (s after the start): "
            + ", ".join(f"{t:.1f} s ({v * 1000:.0f} ms)" for v, t in tail)
        )
        each = 1000 / floor * 10
        print(f"  engine floor (one-step no-op workflows, 10 in flight): {floor:.1f} wf/s, {each:.0f} ms each")


if __name__ == "__main__":
    asyncio.run(main())
