"""What is in flight, counted from Temporal's visibility when the API's /metrics is scraped: rollouts in
progress, orders stuck waiting for the CMMS, accounts waiting for or refused by the CMMS.

Counted from Temporal, not kept in the process, so every API process answers the same figures and
none drifts after a restart. Each is one count query with a short deadline; when Temporal does not
answer, `temporal_visibility_up` says so and the figures keep their last values. The counts are run
at most once an API_METRICS_REFRESH_SECONDS (`CachedGauges`): scrapes in between, however many and
from whomever (/metrics needs no key), answer the figures of the last count, and cost Temporal nothing.

An account's workflow runs only while it has work (it ends once in sync): the account figures count
running workflows that are pushing or refused, and a run never ends in either state, so idle accounts,
running or not, count in neither.
"""

import asyncio
import logging
import time
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge
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
COUNTED = Counter(
    "operations_gauges_refreshes_total",
    "Times the API counted the workflows in flight in Temporal's visibility (at most once a refresh interval)",
)


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
    """Count each figure now."""
    COUNTED.inc()
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


class CachedGauges:
    """The figures for /metrics, counted at most once every `every_seconds` (0: on every scrape).

    Scrapes that arrive while a count runs wait for it and answer its figures: one count however many
    scrapes come at once. A failed count (Temporal away) also waits out the interval before the next."""

    def __init__(self, every_seconds: float) -> None:
        self._every = every_seconds
        self._counted_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self, temporal: Client) -> None:
        """Bring the figures up to date unless they were counted less than the interval ago."""
        async with self._lock:
            if self._counted_at is not None and time.monotonic() - self._counted_at < self._every:
                return
            await refresh(temporal)
            self._counted_at = time.monotonic()
