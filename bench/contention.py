"""The engine's floor while other processes burn CPU beside it, as the order's own processes do.

    .venv/bin/python -m bench.contention --busy-cores 0 1 2

Starts its own system (bench/harness.py) and measures the 3-activity no-op floor (bench/floor.py)
with 0, 1 and 2 processes each spinning on a core: what any CPU the API, the worker's real work and
the simulator use on the same machine costs the engine's own throughput.
"""

import argparse
import asyncio
import sys

from bench.floor import floor_rate
from bench.harness import bench_stack, cpu_per_run
from core.settings import Settings
from core.temporal import connect


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--busy-cores", type=int, nargs="+", default=[0, 1, 2], help="spinning processes beside it")
    args = parser.parse_args()
    async with bench_stack() as stack:
        client = await connect(Settings(_env_file=None, temporal_address=stack.temporal_address).temporal)
        await floor_rate(client, workflows=50, steps=3, concurrency=args.concurrency)  # warm-up
        for busy in args.busy_cores:
            spin = (sys.executable, "-c", "while True: pass")
            spinners = [await asyncio.create_subprocess_exec(*spin) for _ in range(busy)]
            try:
                before = stack.cpu()
                rate = await floor_rate(client, workflows=args.workflows, steps=3, concurrency=args.concurrency)
                spent = cpu_per_run(before, stack.cpu(), args.workflows)
            finally:
                for spinner in spinners:
                    spinner.kill()
                    await spinner.wait()
            print(f"{busy} spinning beside the engine: floor {rate:.1f} workflows/s; CPU ms per workflow: {spent}")


if __name__ == "__main__":
    asyncio.run(main())
