"""PortaBilling's ESPF events in (`BILLING_SOURCE=portabilling`): each stored once, by its `i_event`.

ESPF delivers at least once and retries until it gets a 200 ("Receiving provisioning events"), so an
event is stored, and what Temporal must learn recorded (the outbox), in one transaction: a repeat
finds it stored and changes nothing. Events are thin and some are coalesced, so none is acted on by
its content: an account's event has the account's workflow read PortaBilling's current state and
push it; a customer's event has every account of the customer do so (the customer's rollout).

Event names are `contracts.portabilling.EventType`'s (and every `Customer/Status/*`). A type not named
there, of an account's or a customer's namespace (`Account/`, `Subscriber/`, `Customer/`), is taken as
"read it again" (logged and counted, since a release may have renamed one we rely on); the rest, and
the noise a new ESPF handler is subscribed to by default (`Invoice/*`, `DID/*`, payments, balances), is
answered `ignored` and pushes nothing.
"""

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any, Literal

from prometheus_client import Counter
from sqlalchemy import delete
from sqlmodel import col, select

from billing.db import SessionMaker, insert_or, snapshot, transaction
from billing.models import OutboxKind, PortaBillingEvent, utcnow
from billing.sources.portabilling import account_key, customer_key
from contracts.portabilling import EspfEvent, scope_of
from core.settings import PortaBillingSettings
from services.outbox import Outbox

log = logging.getLogger("portabilling.events")

# Received events are kept PORTABILLING_EVENT_RETENTION_DAYS; older ones are deleted this often, this
# many a transaction (each holds SQLite's write lock only briefly).
FORGET_EVERY_SECONDS = 3600.0
FORGET_BATCH = 1000

Receipt = Literal["accepted", "repeat", "ignored"]
EVENTS = Counter(
    "portabilling_events_total",
    "ESPF events received, by outcome (accepted, repeat, ignored) and whether this release names the type",
    ["outcome", "known"],
)


async def receive(outbox: Outbox, event: EspfEvent) -> Receipt:
    """Store the event and have its account (or customer's accounts) pushed; a repeat changes nothing.

    `ignored`: stored, but nothing to push: noise (an invoice's, a DID's, a payment's, a balance's event,
    `contracts.portabilling.scope_of`), or it names neither an account nor a customer."""
    scope, known = scope_of(event.event_type)
    ids = event.variables
    # An account's event re-reads the account; a customer's event every account of the customer; noise
    # (an invoice's, a payment's, a balance's) nothing, even when it names them.
    if scope == "account" and ids.i_account is not None:
        target: tuple[OutboxKind, str] | None = (OutboxKind.account, account_key(ids.i_account))
    elif scope != "noise" and ids.i_customer is not None:
        target = (OutboxKind.customer, customer_key(ids.i_customer))
    else:
        target = None
    row = _row(event, known=known)
    async with outbox.transaction() as tx:
        # One statement: stored now, or already stored (a repeat, even one delivered at the same moment).
        insert = insert_or(tx.session, PortaBillingEvent, row, key="i_event", update=None)
        stored = await tx.session.exec(insert.returning(col(PortaBillingEvent.i_event)))
        if stored.first() is None:
            receipt: Receipt = "repeat"
        elif target is None:
            receipt = "ignored"
        else:
            receipt = "accepted"
            kind, key = target
            # A customer's rollout keeps the newest revision it heard of: i_event only grows.
            tx.tell(kind, key, ids.i_event if kind == OutboxKind.customer else None)
    if not known and receipt != "repeat":
        log.warning(
            "ESPF event %s of type %r is not one this release names: %s",
            ids.i_event,
            event.event_type,
            "read again" if target else "nothing to do",
        )
    EVENTS.labels(receipt, str(known).lower()).inc()
    return receipt


def _row(event: EspfEvent, *, known: bool) -> dict[str, Any]:
    """The `PortaBillingEvent` row the event is stored as (a mapping: it is inserted unless stored)."""
    ids = event.variables
    return {
        "i_event": ids.i_event,
        "event_type": event.event_type,
        "i_account": ids.i_account,
        "i_customer": ids.i_customer,
        "known": known,
        "received_at": utcnow(),
    }


async def forget_old_events(sessions: SessionMaker, received_before: datetime) -> int:
    """Delete the events received before `received_before`; returns how many."""
    forgotten = 0
    while True:
        async with snapshot(sessions) as session:
            old = select(PortaBillingEvent.i_event).where(col(PortaBillingEvent.received_at) < received_before)
            ids = list(await session.exec(old.limit(FORGET_BATCH)))
        if not ids:
            return forgotten
        async with transaction(sessions) as session:
            await session.exec(delete(PortaBillingEvent).where(col(PortaBillingEvent.i_event).in_(ids)))
        forgotten += len(ids)


async def forget_old_events_forever(sessions: SessionMaker, portabilling: PortaBillingSettings) -> None:
    """Every FORGET_EVERY_SECONDS, for the API process's lifetime (beside PortaBilling)."""
    keep = timedelta(days=portabilling.event_retention_days)
    while True:
        try:
            if forgotten := await forget_old_events(sessions, utcnow() - keep):
                log.info("deleted %d ESPF events received more than %s ago", forgotten, keep)
        except Exception as err:  # the database away, say: the next round tries again
            log.warning("deleting old ESPF events failed: %s", type(err).__name__)
        await asyncio.sleep(FORGET_EVERY_SECONDS)
