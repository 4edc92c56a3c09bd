"""What a benchmark under the CMMS rate limit reports: its time against 1.2 x N / R (the issue's bound for
N accounts pushed at a limit R), and the simulator's busiest second against R; with no limit, its
throughput against the engine floor measured on the same server.

`GET /_sim/stats` is the simulator's (simulators/cmms/stats.py): `max_per_second` is the most CMMS calls
it served in any one wall-clock second since the counters were last reset (`DELETE /_sim/stats`).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from bench.floor import floor_rate
from bench.harness import BenchStack, bench_stack, cpu_ms_per_run
from core.settings import Settings
from core.temporal import connect


@dataclass
class LimitedStack:
    """The running system, a client of its API and of its CMMS simulator, and its settings."""

    stack: BenchStack
    api: httpx.AsyncClient
    sim: httpx.AsyncClient
    settings: Settings


@asynccontextmanager
async def limited_stack(rate: float, **env: str) -> AsyncIterator[LimitedStack]:
    """`bench_stack` with the CMMS held to `rate` calls/s (0: no limit) and `env`'s other settings."""
    if rate > 0:
        env["CMMS_RATE_LIMIT_PER_SECOND"] = str(rate)
    async with (
        bench_stack(**env) as stack,
        httpx.AsyncClient(base_url=stack.api_url, timeout=120) as api,
        httpx.AsyncClient(base_url=stack.sim_url, timeout=60) as sim,
    ):
        settings = Settings(
            _env_file=None, temporal_address=stack.temporal_address, database_url=stack.env["DATABASE_URL"]
        )
        yield LimitedStack(stack, api, sim, settings)


async def reset_stats(sim: httpx.AsyncClient) -> None:
    """Start the simulator's counters again, so that the busiest second is the measurement's."""
    (await sim.delete("/_sim/stats")).raise_for_status()


async def sim_stats(sim: httpx.AsyncClient) -> dict[str, Any]:
    response = await sim.get("/_sim/stats")
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def limit_report(count: int, elapsed: float, rate: float, stats: dict[str, Any]) -> list[str]:
    """Lines saying whether `count` accounts in `elapsed` seconds met 1.2 x count / rate, and whether the
    simulator's busiest second stayed within `rate`; none when there was no limit (rate 0)."""
    if rate <= 0:
        return []
    bound = 1.2 * count / rate
    met = "met" if elapsed <= bound else "MISSED"
    busiest = stats["max_per_second"]
    held = "met" if busiest <= rate else "EXCEEDED"
    return [
        f"target <= 1.2 x {count} / {rate:g} = {bound:.0f} s: {met}",
        f"CMMS calls in the busiest second: {busiest} (limit {rate:g}: {held})",
    ]


@dataclass
class Floor:
    per_second: float  # no-op workflows a second
    cpu_ms: float  # CPU milliseconds per no-op workflow, every process of the stack together
    concurrency: int


async def warm_floor(running: LimitedStack, concurrency: int, workflows: int = 1000) -> Floor:
    """The engine floor for an account push's shape (a no-op workflow of one activity), `concurrency` in
    flight, after a short warm-up (the floor's worker and the server's caches start cold); its CPU per
    workflow too, which moves less than its rate on a machine shared with other work."""
    client = await connect(running.settings.temporal)
    await floor_rate(client, workflows=100, steps=1, concurrency=concurrency)
    before = running.stack.cpu()
    rate = await floor_rate(client, workflows=workflows, steps=1, concurrency=concurrency)
    cpu_ms = sum(cpu_ms_per_run(before, running.stack.cpu(), workflows).values())
    return Floor(rate, cpu_ms, concurrency)


def floor_report(what: str, per_second: float, cpu_ms: float, floor: Floor, target: float | None = None) -> list[str]:
    """Lines comparing `per_second` of `what` (`cpu_ms` each) with the floor, and with `target` x the floor
    when given. When both keep the cores busy, the ratio of rates is about the inverse ratio of CPU per
    run: that ratio is printed beside, as the one less moved by other work on the machine."""
    ratio = per_second / floor.per_second
    lines = [
        f"engine floor (no-op workflow, 1 activity, {floor.concurrency} in flight): {floor.per_second:.1f} "
        f"workflows/s, CPU {floor.cpu_ms:.0f} ms each",
        f"{what} throughput {per_second:.1f}/s = {ratio:.2f} x the floor",
    ]
    if target is not None:
        lines[-1] += f" (target >= {target:g}: {'met' if ratio >= target else 'MISSED'})"
    lines.append(f"CPU-bound ratio (floor's CPU per run / {what}'s): {floor.cpu_ms / cpu_ms:.2f}")
    return lines


def calls_over_time(stats: dict[str, Any], started: float, rate: float) -> str:
    """Where the measured time went at the CMMS, from the simulator's calls per wall-clock second: the
    first and last second with a call (from `started`, a `time.time()`), the seconds between them with no
    call (gaps: the work reached the CMMS unevenly), and those at the limit. The simulator keeps the last
    600 seconds: a longer run shows its last 600."""
    seconds = {int(second): calls for second, calls in stats["per_second"].items() if calls}
    if not seconds:
        return "no CMMS call"
    first, last = min(seconds), max(seconds)
    idle = sum(1 for second in range(first, last + 1) if second not in seconds)
    begun, ended = max(0.0, first - started), last + 1 - started
    line = f"CMMS calls from +{begun:.0f} s to +{ended:.0f} s; {idle} s without a call between"
    if rate > 0:
        line += f"; {sum(1 for calls in seconds.values() if calls >= rate)} s at the limit"
    return line
