"""The engine's floor: a no-op workflow with as many activity steps as the flow it is compared with."""

import asyncio
import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn(name="bench_noop")
async def noop() -> None:
    return None


@workflow.defn(name="BenchNoopWorkflow")
class NoopWorkflow:
    @workflow.run
    async def run(self, steps: int) -> None:
        for _ in range(steps):
            await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=30))


async def floor_rate(client: Client, *, workflows: int, steps: int, concurrency: int) -> float:
    """Workflows per second for `workflows` no-op runs of `steps` activities, `concurrency` in flight."""
    queue = f"bench-floor-{time.time_ns()}"
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            await client.execute_workflow(NoopWorkflow.run, steps, id=f"{queue}-{index}", task_queue=queue)

    async with Worker(client, task_queue=queue, workflows=[NoopWorkflow], activities=[noop]):
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(workflows)))
        return workflows / (time.perf_counter() - started)
