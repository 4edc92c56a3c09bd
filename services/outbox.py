"""The transactional outbox: what a billing change must tell Temporal is committed with the change.

A service changes billing inside `Outbox.transaction()` and says there what Temporal must learn
(`Tx.tell`): the record is written in the same database transaction, so either both the change and
the record are stored or neither is. Right after the commit the record is delivered in the
background (core.gateway) and deleted; the caller's answer does not wait for Temporal, so it is
the same whether Temporal is up, down or hanging.

A record that was not delivered (Temporal unreachable, the process killed between commit and
delivery) is found by the relay that every API process runs (`Outbox.relay_forever`) and delivered
then: at least once, and idempotent at the workflow. Records carry a lease (`available_at`): the
process that wrote a record has it until the lease ends, and a relay takes a due record by pushing
its lease on in one UPDATE that only one process can win, so several API processes on one database
deliver each record once while each is alive and trying.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from prometheus_client import Counter, Gauge
from sqlalchemy import delete, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from billing.db import SessionMaker, snapshot, transaction
from billing.models import Order, OrderStatus, OutboxKind, OutboxRecord, utcnow
from core import gateway
from core.settings import OutboxSettings
from core.temporal import is_transient

log = logging.getLogger(__name__)

DELIVERED = Counter("outbox_delivered_total", "Outbox records delivered to Temporal", ["kind"])
POSTPONED = Counter("outbox_postponed_total", "Outbox deliveries that failed and wait for another try", ["kind"])
BACKLOG = Gauge("outbox_due", "Outbox records due for delivery at the relay's last round")

# Records a relay round takes at most, and delivers with at most this many calls to Temporal at once.
ROUND = 200
CONCURRENCY = 20
# Why a delivery failed when Temporal is away (not this record's fault): the round stops, the rest wait.
AWAY = "Temporal unreachable"


class Tx:
    """A billing transaction, and what Temporal must learn once it commits."""

    def __init__(self, session: AsyncSession, lease_until: datetime) -> None:
        self.session = session
        self._lease_until = lease_until
        self.records: list[OutboxRecord] = []
        self.orders: dict[str, Order] = {}  # the orders this transaction admitted, by id

    def tell(self, kind: OutboxKind, target: str, revision: int | None = None) -> None:
        """Record, in this transaction, that `target`'s workflow must learn of the change."""
        record = OutboxRecord(kind=kind, target=target, revision=revision, available_at=self._lease_until)
        self.session.add(record)
        self.records.append(record)

    def start_order(self, order: Order) -> None:
        """Record that the order's workflow must start; its delivery right after the commit uses `order`
        as written here, with no read of it."""
        self.tell(OutboxKind.order, order.order_id)
        self.orders[order.order_id] = order


class Outbox:
    """Billing transactions that tell Temporal, and the relay that makes sure it hears."""

    def __init__(self, sessions: SessionMaker, temporal: Client, settings: OutboxSettings, task_queue: str) -> None:
        self.sessions = sessions
        self._temporal = temporal
        self._settings = settings
        self._task_queue = task_queue  # the workflows'
        self._lease = timedelta(seconds=settings.lease_seconds)
        self._in_flight: set[asyncio.Task[None]] = set()
        # Records delivered and not yet deleted: deleted together by the relay, at most every half lease,
        # so that a change costs billing one write transaction, not two (on SQLite every write waits for
        # the one lock the worker also takes, holding the process's one connection meanwhile). Until
        # then their lease keeps other relays off them; should this process die first, they are
        # delivered again, which changes nothing.
        self._delivered: list[int] = []
        self._forgotten_at = 0.0  # time.monotonic() of the last such delete

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A transaction that commits on success (with its records) and rolls back on any error;
        its records are delivered right after the commit, in the background."""
        async with transaction(self.sessions) as session:
            tx = Tx(session, utcnow() + self._lease)
            yield tx
        if tx.records:
            task = asyncio.create_task(self._deliver_each(tx.records, tx.orders))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def relay_forever(self) -> None:
        """Deliver what was left undelivered, every OUTBOX_POLL_SECONDS, for the process's lifetime."""
        while True:
            await asyncio.sleep(self._settings.poll_seconds)
            try:
                await self.relay_once()
            except Exception as err:  # the database away, say: the next round tries again
                log.warning("outbox relay round failed: %s", type(err).__name__)

    async def relay_once(self) -> int:
        """Delete what was delivered (at most every half lease), then take the records that are due (their
        lease over) and deliver them; returns how many were delivered."""
        if time.monotonic() - self._forgotten_at >= self._lease.total_seconds() / 2:
            await self._forget_delivered()
        now = utcnow()
        async with snapshot(self.sessions) as session:
            due = select(OutboxRecord.id).where(col(OutboxRecord.available_at) <= now)
            ids = [
                i for i in (await session.exec(due.order_by(col(OutboxRecord.available_at)).limit(ROUND))).all() if i
            ]
            BACKLOG.set(len(ids))
        if not ids:
            return 0
        records = await self._claim(ids, now)
        delivered = await self._deliver_batch(records, {})
        await self._forget_delivered()
        return delivered

    async def pending(self) -> int:
        """Records not delivered yet (due or leased)."""
        await self._forget_delivered()
        async with snapshot(self.sessions) as session:
            return (await session.exec(select(func.count()).select_from(OutboxRecord))).one()

    async def newest_revision(self, kind: OutboxKind, target: str) -> int | None:
        """The newest revision an undelivered (or just delivered) record tells `target`'s workflow of."""
        async with snapshot(self.sessions) as session:
            query = select(func.max(OutboxRecord.revision)).where(
                OutboxRecord.kind == kind, OutboxRecord.target == target
            )
            newest: int | None = (await session.exec(query)).one()
            return newest

    async def close(self, grace_seconds: float = 2.0) -> None:
        """Let deliveries in progress finish for a moment; what is left is the relay's to deliver later."""
        if self._in_flight:
            _, left = await asyncio.wait(self._in_flight, timeout=grace_seconds)
            for task in left:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*left, return_exceptions=True)
        with contextlib.suppress(Exception):  # the database away: they are delivered again later
            await self._forget_delivered()

    async def _forget_delivered(self) -> None:
        self._forgotten_at = time.monotonic()
        if not self._delivered:
            return
        done, self._delivered = self._delivered, []
        try:
            async with transaction(self.sessions) as session:
                await session.exec(delete(OutboxRecord).where(col(OutboxRecord.id).in_(done)))
        except Exception:
            self._delivered.extend(done)  # tried again at the next round
            raise

    async def _claim(self, ids: list[int], now: datetime) -> list[OutboxRecord]:
        """Push the lease of those of `ids` still due; only the records this process won are returned."""
        async with transaction(self.sessions) as session:
            won = await session.exec(
                update(OutboxRecord)
                .where(col(OutboxRecord.id).in_(ids), col(OutboxRecord.available_at) <= now)
                .values(available_at=now + self._lease)
                .returning(col(OutboxRecord.id))
            )
            won_ids = list(won.scalars().all())
            if not won_ids:
                return []
            rows = await session.exec(select(OutboxRecord).where(col(OutboxRecord.id).in_(won_ids)))
            return sorted(rows.all(), key=lambda record: record.id or 0)

    async def _deliver_each(self, records: list[OutboxRecord], orders: dict[str, Order]) -> None:
        try:
            await self._deliver_batch(records, orders)
        except Exception as err:  # the database away after the commit: the relay delivers them later
            log.warning("outbox delivery after commit failed: %s", type(err).__name__)

    async def _deliver_batch(self, records: list[OutboxRecord], orders: dict[str, Order]) -> int:
        gate = asyncio.Semaphore(CONCURRENCY)
        away = asyncio.Event()
        delivered: list[OutboxRecord] = []
        failed: list[tuple[OutboxRecord, str]] = []

        async def one(record: OutboxRecord) -> None:
            async with gate:
                if away.is_set():
                    failed.append((record, AWAY))
                    return
                reason = await self._send(record, orders.get(record.target))
                if reason is None:
                    delivered.append(record)
                    return
                failed.append((record, reason))
                if reason == AWAY:
                    away.set()

        await asyncio.gather(*(one(record) for record in records))
        self._delivered.extend(_ids(delivered))
        wait = 0.0
        if failed:
            async with transaction(self.sessions) as session:
                for record, reason in failed:
                    wait = max(wait, await self._postpone(session, record, reason))
        for record in delivered:
            DELIVERED.labels(record.kind.value).inc()
        if failed:
            # One line a round, however many records wait: an outage must not flood the log.
            reasons = sorted({reason for _, reason in failed})
            first = failed[0][0]
            log.warning(
                "Temporal not told yet of %d change(s) (%s; e.g. %s %s); trying again within %.1f s",
                len(failed),
                ", ".join(reasons),
                first.kind.value,
                first.target,
                wait,
            )
        return len(delivered)

    async def _send(self, record: OutboxRecord, order: Order | None) -> str | None:
        """Deliver one record; None when done, else why not (a short reason, no secret in it)."""
        try:
            await self._tell(record, order)
        except Exception as err:
            if is_transient(err):
                return AWAY
            if isinstance(err, RPCError):
                # Tried again all the same (the change must not be lost) until an operator fixes the cause.
                log.error(
                    "%s %s: Temporal refuses it (%s: %s); outbox record %s kept",
                    record.kind.value,
                    record.target,
                    err.status.name,
                    err.message,
                    record.id,
                )
                return err.status.name
            log.exception("outbox record %s (%s %s) could not be delivered", record.id, record.kind, record.target)
            return type(err).__name__
        return None

    async def _tell(self, record: OutboxRecord, order: Order | None) -> None:
        client, task_queue = self._temporal, self._task_queue
        match record.kind:
            case OutboxKind.order:
                if order is None:  # the relay's: read the order as it stands
                    async with snapshot(self.sessions) as session:
                        order = await session.get(Order, record.target)
                # Only an order still `accepted` may lack its workflow: any later state was set by it.
                if order is not None and order.status == OrderStatus.accepted:
                    await gateway.start_order(
                        client, task_queue, order.order_id, customer_id=order.customer_id, account_id=order.account_id
                    )
            case OutboxKind.account:
                await gateway.account_changed(client, task_queue, record.target)
            case OutboxKind.customer:
                await gateway.customer_changed(client, task_queue, record.target, record.revision or 0)
            case OutboxKind.product:
                await gateway.product_policy_changed(client, task_queue, record.target)
            case OutboxKind.bulk_import:
                await gateway.start_import(client, task_queue, record.target)

    async def _postpone(self, session: AsyncSession, record: OutboxRecord, reason: str) -> float:
        """Count the failed try and set when the record is next due; returns the wait in seconds."""
        attempts = record.attempts + 1
        wait = min(self._settings.retry_max_seconds, 0.25 * 2.0 ** min(attempts, 16))
        await session.exec(
            update(OutboxRecord)
            .where(col(OutboxRecord.id) == record.id)
            .values(attempts=attempts, available_at=utcnow() + timedelta(seconds=wait), last_error=reason[:200])
        )
        POSTPONED.labels(record.kind.value).inc()
        return wait


def _ids(records: Iterable[OutboxRecord]) -> list[int]:
    return [record.id for record in records if record.id is not None]
