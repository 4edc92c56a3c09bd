"""What is in flight, counted from Temporal's visibility when the API's /metrics is scraped: rollouts in
progress, orders stuck waiting for the CMMS, accounts waiting for or refused by the CMMS.

Counted at scrape time, not kept in the process, so every API process answers the same figures and
none drifts after a restart. Each is one count query with a short deadline; when Temporal does not
answer, `temporal_visibility_up` says so and the figures keep their last values.
"""

import asyncio
import logging
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Gauge
from temporalio.client import Client

from billing.models import utcnow
from contracts.search_attributes import ProvisioningState
from contracts.workflows import ACCOUNT, CUSTOMER_ROLLOUT, MESSAGING_ROLLOUT, MVNO_ORDER, WorkflowRef
from core import gateway

log = logging.getLogger(__name__)

# An order is stuck once it has been provisioning this long (the CMMS away, or refusing slowly).
STUCK_AFTER = timedelta(minutes=5)
_DEADLINE = timedelta(seconds=2)

ROLLOUTS = Gauge("rollouts_in_progress", "Rollouts running, by kind (customer, messaging)", ["kind"])
STUCK_ORDERS = Gauge("orders_stuck_provisioning", "Orders provisioning for more than 5 minutes")
WAITING = Gauge("accounts_waiting_for_cmms", "Accounts whose workflow is pushing to the CMMS (waits out an outage)")
REFUSED = Gauge("accounts_refused_by_cmms", "Accounts whose last push the CMMS refused for good")
UP = Gauge("temporal_visibility_up", "1 when the last scrape could count workflows in Temporal, else 0")


def _counts(temporal: Client, now: datetime) -> dict[Gauge, Coroutine[Any, Any, int]]:
    def running(ref: WorkflowRef[Any, Any], **where: Any) -> Coroutine[Any, Any, int]:
        return gateway.count_running(temporal, ref, rpc_timeout=_DEADLINE, **where)

    return {
        ROLLOUTS.labels("customer"): running(CUSTOMER_ROLLOUT),
        ROLLOUTS.labels("messaging"): running(MESSAGING_ROLLOUT),
        STUCK_ORDERS: running(MVNO_ORDER, state=ProvisioningState.provisioning, started_before=now - STUCK_AFTER),
        WAITING: running(ACCOUNT, state=ProvisioningState.pushing),
        REFUSED: running(ACCOUNT, state=ProvisioningState.refused),
    }


async def refresh(temporal: Client) -> None:
    """Count each figure now (called by the API's /metrics before it answers)."""
    counts = _counts(temporal, utcnow())
    try:
        figures = await asyncio.gather(*counts.values())
    except Exception as err:  # Temporal away or slow: the scrape still answers, and says so
        log.info("workflow counts not refreshed: %s", type(err).__name__)
        UP.set(0)
        return
    for gauge, figure in zip(counts, figures, strict=True):
        gauge.set(figure)
    UP.set(1)
