"""The Temporal worker process: every workflow and activity of the service.

Two task queues: the main one (workflows and billing-database activities) and its `-cmms` twin,
which carries only CMMS calls so that the server can hold them to the CMMS's rate limit.
"""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.imports import ImportActivities
from activities.orders import OrderActivities
from activities.provisioning import ProvisioningActivities
from activities.reconciliation import ReconciliationActivities
from activities.rollouts import RolloutActivities
from activities.signups import SignupActivities
from activities.wallets import MessagingRolloutActivities
from billing.db import SessionMaker, make_sessionmaker, open_billing
from billing.sources.base import BillingSource
from billing.sources.builtin import BuiltinSource
from billing.sources.factory import billing_source
from billing.sources.portabilling import PortaBillingSource
from clients.cmms import CmmsClient
from clients.sip_registrar import SipRegistrar
from core.logging import configure_logging
from core.memory import freeze_startup_objects
from core.settings import Settings, get_settings
from core.temporal import connect, metrics_runtime
from services.account_wakes import wake_due_accounts_forever
from services.reconciliation import ensure_reconciliation_schedule
from workflows.account import AccountWorkflow
from workflows.customer_rollout import CustomerRolloutWorkflow
from workflows.imports import ImportWorkflow
from workflows.messaging_rollout import MessagingRolloutWorkflow
from workflows.mvno_order import MvnoOrderWorkflow
from workflows.ott_signup import OttSignupWorkflow
from workflows.policies import cmms_task_queue
from workflows.reconciliation import ReconciliationWorkflow

WORKFLOWS: Sequence[type] = [
    MvnoOrderWorkflow,
    AccountWorkflow,
    CustomerRolloutWorkflow,
    MessagingRolloutWorkflow,
    OttSignupWorkflow,
    ReconciliationWorkflow,
    ImportWorkflow,
]


def billing_activities(sessions: SessionMaker) -> list[Callable[..., Any]]:
    """Activities on the main task queue, bound to the clients they use."""
    orders = OrderActivities(sessions)
    return [orders.create_order_account, orders.complete_order, orders.fail_order]


def rollout_activities(
    source: BillingSource, client: Client, sessions: SessionMaker, settings: Settings
) -> list[Callable[..., Any]]:
    """A customer's rollout (customized provisioning): its steps call the accounts' workflows through `client`."""
    rollouts = RolloutActivities(source, sessions, client, settings.rollouts, settings.temporal.task_queue)
    return [rollouts.list_rollout_accounts, rollouts.sync_rollout_accounts]


def messaging_activities(client: Client, sessions: SessionMaker, settings: Settings) -> list[Callable[..., Any]]:
    """A product's messaging policy rollout (messaging by wallet): tells the accounts' workflows through `client`."""
    rollout = MessagingRolloutActivities(sessions, client, settings.temporal.task_queue)
    return [rollout.signal_product_accounts]


def signup_activities(client: Client, sessions: SessionMaker, settings: Settings) -> list[Callable[..., Any]]:
    """OTT self-signups: send the code by SMS, record the signup, create the number's account
    (a live one's new password is pushed through its account workflow, via `client`)."""
    signups = SignupActivities(
        sessions,
        settings.signups,
        client,
        sms=settings.sms,
        outbox=settings.outbox,
        secret_key=settings.secret_key,
        task_queue=settings.temporal.task_queue,
    )
    return [
        signups.send_signup_code,
        signups.record_signup,
        signups.create_signup_account,
        signups.push_signup_account,
        signups.discard_signup_account,
    ]


def cmms_activities(
    source: BillingSource,
    cmms: CmmsClient,
    registrar: SipRegistrar | None = None,
    idle_horizon: timedelta | None = None,
) -> list[Callable[..., Any]]:
    """Activities that call the CMMS (and then the SIP registrar, when there is one): on the rate-limited
    task queue. `idle_horizon`: a wake sweep starts accounts due within it (an account due later needs no
    timer); None: none does."""
    provisioning = ProvisioningActivities(source, cmms, registrar, idle_horizon)
    return [provisioning.provision_account]


def reconciliation_activities(
    client: Client,
    sessions: SessionMaker,
    cmms: CmmsClient,
    settings: Settings,
    source: BillingSource | None = None,
    registrar: SipRegistrar | None = None,
) -> ReconciliationActivities:
    """Reconciliation: its billing side and repairs (through the accounts' workflows, via `client`), and
    its CMMS side (the record list, orphans removed; the SIP registrar's rows with them, when there is
    one). Beside PortaBilling its billing side is the accounts `source` lists."""
    lister = source if isinstance(source, PortaBillingSource) else None
    return ReconciliationActivities(
        sessions,
        cmms,
        client,
        settings.reconciliation,
        provisioning=settings.provisioning,
        secret_key=settings.secret_key,
        billing_source=settings.billing_source,
        task_queue=settings.temporal.task_queue,
        lister=lister,
        source=source,
        registrar=registrar,
    )


def import_activities(
    client: Client, sessions: SessionMaker, source: BillingSource, cmms: CmmsClient, settings: Settings
) -> ImportActivities:
    """Bulk imports: their rows (billing) and pushes (through the accounts' workflows, via `client`) on the
    main queue; their comparisons with the CMMS on the rate-limited one."""
    return ImportActivities(sessions, source, cmms, client, settings.imports, settings.temporal.task_queue)


def build_workers(
    client: Client,
    settings: Settings,
    sessions: SessionMaker,
    cmms: CmmsClient,
    source: BillingSource | None = None,
    registrar: SipRegistrar | None = None,
) -> list[Worker]:
    """The two workers; `source` is where billing is read (the built-in billing when not given);
    `registrar` the SIP registrar's subscriber table kept beside the CMMS (none when not given)."""
    source = source or BuiltinSource(sessions, settings.provisioning, settings.rollouts)
    task_queue = settings.temporal.task_queue
    reconciliation = reconciliation_activities(client, sessions, cmms, settings, source, registrar)
    # Reconciliation's billing side and its repairs (through the accounts' workflows) on the main queue;
    # its CMMS side (the record list, orphans removed) on the rate-limited one.
    billing_side: list[Callable[..., Any]] = [
        reconciliation.read_billing_page,
        reconciliation.repair_accounts,
        reconciliation.record_orphans,
        reconciliation.read_orphans,
        reconciliation.hold_orphans,
        reconciliation.forget_orphans,
    ]
    cmms_side: list[Callable[..., Any]] = [reconciliation.read_cmms_page, reconciliation.remove_orphans]
    imports = import_activities(client, sessions, source, cmms, settings)
    main = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=billing_activities(sessions)
        + rollout_activities(source, client, sessions, settings)
        + messaging_activities(client, sessions, settings)
        + signup_activities(client, sessions, settings)
        + billing_side
        + [imports.read_import_page, imports.push_import_page],
        max_concurrent_activities=100,
    )
    cmms_calls = Worker(
        client,
        task_queue=cmms_task_queue(task_queue),
        activities=cmms_activities(source, cmms, registrar, wake_sweep_horizon(settings, source))
        + cmms_side
        + [imports.compare_imported_account],
        max_concurrent_activities=100,
        max_task_queue_activities_per_second=settings.cmms.rate_limit_per_second,
    )
    return [main, cmms_calls]


def wake_sweep_horizon(settings: Settings, source: BillingSource) -> timedelta | None:
    """The idle-timer horizon when this worker sweeps for due accounts: the built-in billing only (its due
    times can be queried), and only with a sweep more often than the horizon."""
    return settings.provisioning.idle_horizon if isinstance(source, BuiltinSource) else None


@asynccontextmanager
async def sip_registrar(settings: Settings) -> AsyncIterator[SipRegistrar | None]:
    """The SIP registrar's subscriber table when SIP_REGISTRAR asks for one (its schema is made on first
    use, so a registrar database that is down does not stop the worker), else None."""
    if not settings.sip.enabled:
        yield None
        return
    async with SipRegistrar(settings.sip.database_url) as registrar:
        yield registrar


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the workers until `stop` is set; the reconciliation schedule is brought in line first."""
    engine = open_billing(settings.database)
    # The SDK's own metrics (task latencies, slots, polls) for Prometheus, on WORKER_METRICS_PORT.
    client = await connect(settings.temporal, runtime=metrics_runtime(settings.worker))
    await ensure_reconciliation_schedule(client, settings)
    async with AsyncExitStack() as stack:
        cmms = await stack.enter_async_context(
            CmmsClient(
                settings.cmms.url,
                settings.cmms.token.get_secret_value(),
                timeout=settings.cmms.timeout_seconds,
                rate_limit_per_second=settings.cmms.rate_limit_per_second,
            )
        )
        sessions = make_sessionmaker(engine)
        source = await stack.enter_async_context(billing_source(settings, sessions))
        registrar = await stack.enter_async_context(sip_registrar(settings))
        for worker in build_workers(client, settings, sessions, cmms, source, registrar):
            await stack.enter_async_context(worker)
        horizon = wake_sweep_horizon(settings, source)
        if horizon is not None:
            sweep = asyncio.create_task(
                wake_due_accounts_forever(
                    sessions, client, settings.temporal.task_queue, horizon, settings.provisioning.wake_sweep_seconds
                )
            )
            stack.callback(sweep.cancel)
        logging.getLogger("worker").info(
            "worker polling task queue %r at %s", settings.temporal.task_queue, settings.temporal.address
        )
        freeze_startup_objects()
        await stop.wait()
    await engine.dispose()


async def main() -> None:
    settings = get_settings()
    configure_logging(settings.log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


if __name__ == "__main__":
    asyncio.run(main())
