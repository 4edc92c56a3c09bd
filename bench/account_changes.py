"""Single-account change propagation (customized provisioning): API call → the CMMS record's version raised.

    .venv/bin/python -m bench.account_changes --changes 200 --concurrency 1

Starts its own system (bench/harness.py), seeds `--accounts` accounts in bulk (billing rows and their
CMMS records), touches each once so that its account workflow exists, then makes `--changes` changes
(`PATCH /v1/accounts/{id}` alternating `blocked` and a new password), `--concurrency` at a time on
distinct accounts, each timed from the request until `GET /api/v1/accounts/{id}` on the simulator shows
a higher version. Reports p50/p95/p99.
"""

import argparse
import asyncio
import time
from datetime import datetime

import httpx

from bench.harness import bench_stack, cpu_per_run
from bench.rollout import ADMIN, CMMS, account_id, seed_billing, seed_cmms
from bench.stats import summary_ms
from core.settings import Settings

POLL_SECONDS = 0.01


async def version(sim: httpx.AsyncClient, account: str) -> tuple[int, float]:
    """The CMMS record's version, and when (wall clock) it last rose."""
    response = await sim.get(f"/api/v1/accounts/{account}", headers=CMMS)
    response.raise_for_status()
    found = response.json()
    return found["version"], datetime.fromisoformat(found["updated_at"]).timestamp()


async def change(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, account: str, step: int, slowest: float = POLL_SECONDS
) -> float:
    """One change (a new password; every other one blocks or unblocks too), timed until the CMMS holds it:
    the record's own stamp of its version rising, so the reads (every POLL_SECONDS, each wait doubling up
    to `slowest`) may be sparse without losing precision."""
    before, _ = await version(sim, account)
    body: dict[str, object] = {"password": f"Bench-New-{step:08d}"}
    if step % 2:
        body["blocked"] = step % 4 == 1  # per account, steps alternate between blocking and unblocking
    started, pause = time.time(), POLL_SECONDS
    (await api.patch(f"/v1/accounts/{account}", json=body, headers=ADMIN)).raise_for_status()
    while (now := await version(sim, account))[0] <= before:
        await asyncio.sleep(pause)
        pause = min(pause * 2, max(slowest, POLL_SECONDS))
    return now[1] - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    async with (
        bench_stack() as stack,
        httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api,
        httpx.AsyncClient(base_url=stack.sim_url, timeout=60) as sim,
    ):
        settings = Settings(_env_file=None, database_url=stack.env["DATABASE_URL"])
        seed_billing(settings.database, args.accounts)
        await seed_cmms(sim, args.accounts, settings.provisioning.default_domain)
        accounts = [account_id(i) for i in range(args.accounts)]
        warm_up = (change(api, sim, account, -1 - i) for i, account in enumerate(accounts))  # their workflows start
        await asyncio.gather(*warm_up)
        samples: list[float] = []
        lanes = [accounts[lane :: args.concurrency] for lane in range(args.concurrency)]

        async def lane(own: list[str], offset: int) -> None:
            for step in range(offset, args.changes, args.concurrency):
                samples.append(await change(api, sim, own[step // args.concurrency % len(own)], step))

        started, cpu_before = time.perf_counter(), stack.cpu()
        await asyncio.gather(*(lane(own, offset) for offset, own in enumerate(lanes)))
        elapsed, cpu_after = time.perf_counter() - started, stack.cpu()
        print(f"{args.changes} account changes, {args.concurrency} in flight, over {elapsed:.1f} s:")
        print(f"  API call -> CMMS version raised: {summary_ms(samples)}")
        print(f"  CPU ms per change: {cpu_per_run(cpu_before, cpu_after, args.changes)}")


if __name__ == "__main__":
    asyncio.run(main())
