"""Resident memory of the stack's processes, read from /proc (psutil is not a dependency)."""

import asyncio
from pathlib import Path

from bench.harness import BenchStack

# The processes whose memory the capacity targets bound.
MEASURED = ("worker", "temporal", "api")


def rss_mib(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_now(stack: BenchStack) -> dict[str, float]:
    return {name: rss_mib(stack.pid(name)) for name in MEASURED}


async def sample_memory(stack: BenchStack, peaks: dict[str, float], stop: asyncio.Event) -> None:
    """Keep each measured process's highest RSS in `peaks` until `stop` is set (a reading every 0.5 s)."""
    while not stop.is_set():
        for name, value in rss_now(stack).items():
            peaks[name] = max(peaks.get(name, 0.0), value)
        await asyncio.sleep(0.5)


def mib(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f} MiB" for name, value in values.items())
