"""The Temporal worker: runs every workflow and activity of the service on one task queue."""

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

from cmms.client import CmmsClient
from temporalio.client import Client
from temporalio.worker import Worker

from activities.orders import OrderActivities
from activities.provisioning import ProvisioningActivities
from billing.db import SessionMaker, make_engine, make_sessionmaker
from core.settings import Settings, get_settings
from core.temporal import connect
from workflows.mvno_order import MvnoOrderWorkflow

WORKFLOWS: Sequence[type] = [MvnoOrderWorkflow]


def activities(sessions: SessionMaker, cmms: CmmsClient, settings: Settings) -> list[Callable[..., Any]]:
    """Every activity, bound to the clients it uses."""
    orders = OrderActivities(sessions)
    provisioning = ProvisioningActivities(sessions, cmms, settings)
    return [
        orders.create_order_account,
        orders.complete_order,
        orders.fail_order,
        provisioning.provision_account,
    ]


def build_worker(client: Client, settings: Settings, sessions: SessionMaker, cmms: CmmsClient) -> Worker:
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=activities(sessions, cmms, settings),
        max_concurrent_activities=200,
    )


async def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    engine = make_engine(settings.database_url)
    client = await connect(settings)
    async with CmmsClient(
        settings.cmms_url, settings.cmms_token.get_secret_value(), timeout=settings.cmms_timeout_seconds
    ) as cmms:
        worker = build_worker(client, settings, make_sessionmaker(engine), cmms)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            logging.getLogger("worker").info(
                "worker polling task queue %r at %s", settings.temporal_task_queue, settings.temporal_address
            )
            await stop.wait()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
