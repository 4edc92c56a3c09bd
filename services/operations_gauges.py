"""What is in flight, counted from Temporal's visibility when the API's /metrics is scraped: rollouts in
progress, orders stuck waiting for the CMMS, accounts waiting for or refused by the CMMS.

Counted at scrape time, not kept in the process, so every API process answers the same figures and
none drifts after a restart. Each is one count query with a short deadline; when Temporal does not
answer, `temporal_visibility_up` says so and the figures keep their last values.
"""

import asyncio
import logging
from datetime import datetime, timedelta

from prometheus_client import Gauge
from temporalio.client import Client

from billing.models import utcnow

log = logging.getLogger(__name__)

# An order is stuck once it has been provisioning this long (the CMMS away, or refusing slowly).
STUCK_AFTER = timedelta(minutes=5)
_DEADLINE = timedelta(seconds=2)

ROLLOUTS = Gauge("rollouts_in_progress", "Rollouts running, by kind (customer, messaging)", ["kind"])
STUCK_ORDERS = Gauge("orders_stuck_provisioning", "Orders provisioning for more than 5 minutes")
WAITING = Gauge("accounts_waiting_for_cmms", "Accounts whose workflow is pushing to the CMMS (waits out an outage)")
REFUSED = Gauge("accounts_refused_by_cmms", "Accounts whose last push the CMMS refused for good")
UP = Gauge("temporal_visibility_up", "1 when the last scrape could count workflows in Temporal, else 0")

_RUNNING = 'ExecutionStatus = "Running"'


def _queries(now: datetime) -> dict[Gauge, str]:
    since = (now - STUCK_AFTER).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        ROLLOUTS.labels("customer"): f'WorkflowType = "CustomerRolloutWorkflow" AND {_RUNNING}',
        ROLLOUTS.labels("messaging"): f'WorkflowType = "MessagingRolloutWorkflow" AND {_RUNNING}',
        STUCK_ORDERS: (
            f'WorkflowType = "MvnoOrderWorkflow" AND {_RUNNING} AND ProvisioningState = "provisioning" '
            f'AND StartTime < "{since}"'
        ),
        WAITING: f'WorkflowType = "AccountWorkflow" AND {_RUNNING} AND ProvisioningState = "pushing"',
        REFUSED: f'WorkflowType = "AccountWorkflow" AND {_RUNNING} AND ProvisioningState = "refused"',
    }


async def refresh(temporal: Client) -> None:
    """Count each figure now (called by the API's /metrics before it answers)."""
    queries = _queries(utcnow())
    try:
        counts = await asyncio.gather(
            *(temporal.count_workflows(query, rpc_timeout=_DEADLINE) for query in queries.values())
        )
    except Exception as err:  # Temporal away or slow: the scrape still answers, and says so
        log.info("workflow counts not refreshed: %s", type(err).__name__)
        UP.set(0)
        return
    for gauge, count in zip(queries, counts, strict=True):
        gauge.set(count.count)
    UP.set(1)
