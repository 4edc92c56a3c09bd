"""OTT signup benchmark: the latency of a signup's two calls through the real API, as the CMMS makes them.

    .venv/bin/python -m bench.signups --signups 100 --concurrency 10

Runs against a running system (`make run`; `--api`, `--sim`, `--key` point elsewhere).

For each new number: `POST /v1/signups` (202 once the SMS is accepted by the gateway), the code read
from the simulator's SMS outbox (not timed: a person types it), then `POST /v1/signups/{id}/verify`
(200 with the credentials once the account exists in billing and in the CMMS). Reports p50/p95/p99
of each call and of the two together, and signups/s completed, next to the engine's floor measured
in the same run on the same Temporal server (a no-op workflow of 5 activities, a signup's step count).
"""

import argparse
import asyncio
import re
import secrets
import time
from dataclasses import dataclass, field

import httpx

from bench.floor import floor_rate
from bench.stats import summary_ms
from core.settings import Settings
from core.temporal import connect

_CODE = re.compile(r"\b(\d{6})\b")
# A signup's activities: send + record the first code, then create, provision and record the account.
SIGNUP_STEPS = 5


@dataclass
class Samples:
    start: list[float] = field(default_factory=list)
    verify: list[float] = field(default_factory=list)
    both: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def new_number() -> str:
    """A valid German mobile number nobody has used in this run (`+49151` and 8 random digits)."""
    return "+49151" + "".join(secrets.choice("0123456789") for _ in range(8))


async def one_signup(api: httpx.AsyncClient, sim: httpx.AsyncClient, headers: dict[str, str], out: Samples) -> None:
    number = new_number()
    began = time.perf_counter()
    started = await api.post("/v1/signups", json={"phone_number": number}, headers=headers)
    start_s = time.perf_counter() - began
    if started.status_code != 202:
        out.errors.append(f"signup {started.status_code}: {started.text[:200]}")
        return
    messages = (await sim.get("/sms/v1/outbox", params={"to": number})).json()
    found = _CODE.search(messages[-1]["text"]) if messages else None
    if found is None:
        out.errors.append("no code in the outbox")
        return
    signup_id = started.json()["signup_id"]
    began_verify = time.perf_counter()
    verified = await api.post(f"/v1/signups/{signup_id}/verify", json={"code": found.group(1)}, headers=headers)
    verify_s = time.perf_counter() - began_verify
    if verified.status_code != 200 or "credentials" not in verified.json():
        out.errors.append(f"verify {verified.status_code}: {verified.text[:200]}")
        return
    out.start.append(start_s)
    out.verify.append(verify_s)
    out.both.append(start_s + verify_s)


async def run(api_url: str, sim_url: str, key: str, signups: int, concurrency: int, temporal: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    out = Samples()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(signups):
        queue.put_nowait(index)

    async with httpx.AsyncClient(base_url=api_url, timeout=60) as api, httpx.AsyncClient(base_url=sim_url) as sim:
        # One signup first, untimed: it creates the OTT customer and product on first use.
        await one_signup(api, sim, headers, Samples())

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                await one_signup(api, sim, headers, out)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began

    print(f"{signups} signups, {concurrency} in flight, against {api_url}")
    print(f"  POST /v1/signups (SMS accepted):        {summary_ms(out.start)}")
    print(f"  POST /v1/signups/{{id}}/verify (account): {summary_ms(out.verify)}")
    print(f"  both calls together:                     {summary_ms(out.both)}")
    rate = len(out.both) / elapsed
    floor = await floor_rate(
        await connect(Settings().temporal, address=temporal),
        workflows=signups,
        steps=SIGNUP_STEPS,
        concurrency=concurrency,
    )
    print(f"  completed {rate:.1f} signups/s; {len(out.errors)} errors")
    print(f"  engine floor ({SIGNUP_STEPS}-activity no-op workflow): {floor:.1f}/s; ratio {rate / floor:.2f}")
    for error in out.errors[:5]:
        print(f"    {error}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="the billing API (make run's default)")
    parser.add_argument("--sim", default="http://127.0.0.1:8100", help="the simulator, for the SMS outbox")
    parser.add_argument("--key", default="dev-cmms-key", help="an API key with the cmms role")
    parser.add_argument("--temporal", default="127.0.0.1:7233", help="the Temporal server, for the engine floor")
    parser.add_argument("--signups", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    await run(args.api, args.sim, args.key, args.signups, args.concurrency, args.temporal)


if __name__ == "__main__":
    asyncio.run(main())
