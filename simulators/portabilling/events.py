"""ESPF events: emitted on each admin change, delivered to the event URL in the background.

As "Receiving provisioning events" and "Provisioning via webhooks" describe PortaBilling's ESPF: each
event is POSTed as JSON with HTTP basic credentials and a `Date` header, and retried until the
receiver answers 200 (at least once); events start in creation order, a few in flight at once; of the
coalesced types (`contracts.portabilling.is_coalesced`) only the latest queued one per entity is sent.
On purpose, every `PORTABILLING_SIM_REPEAT_EVERY`th event is delivered a second time later, as an
at-least-once sender may. A test can hold deliveries, then release them in order or reversed (the
held batch then goes one at a time, so the receiver sees exactly that order), and send a delivered
event again. Everything runs on the event loop, so no lock.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Literal

import httpx
from pydantic import BaseModel

from clients.pacing import Pacer
from contracts.portabilling import EspfEvent, EspfVariables, is_coalesced
from simulators.portabilling.settings import PortaBillingSimSettings

log = logging.getLogger(__name__)

# Backoff between attempts at one event: doubling from the first, up to the last.
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0
DELIVERY_TIMEOUT_SECONDS = 10.0

EventState = Literal["queued", "delivered", "coalesced"]


class EventView(BaseModel):
    """`GET /_sim/events`: one emitted event and how its delivery went."""

    i_event: int
    event_type: str
    variables: dict[str, str]
    created_at: datetime
    state: EventState
    coalesced_into: int | None  # the later event delivered in its place
    attempts: int  # POSTs made, failed ones included
    deliveries: int  # POSTs answered 200 (2 for an event repeated on purpose)
    delivered_at: datetime | None  # the first 200
    last_status: int | None  # the last answer's HTTP status (None: no answer, see last_error)
    last_error: str | None


@dataclass
class Event:
    """One emitted event (`wire`, as it is sent) and how its delivery goes."""

    wire: EspfEvent
    repeat: bool  # to be delivered twice
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    state: EventState = "queued"
    coalesced_into: int | None = None
    attempts: int = 0
    deliveries: int = 0
    delivered_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None

    @property
    def i_event(self) -> int:
        return self.wire.variables.i_event

    @property
    def event_type(self) -> str:
        return self.wire.event_type

    @property
    def entity(self) -> tuple[int | None, int | None]:
        """The account or customer it is about."""
        return self.wire.variables.i_account, self.wire.variables.i_customer

    def view(self) -> EventView:
        return EventView(
            i_event=self.i_event,
            event_type=self.event_type,
            variables=self.wire.variables.model_dump(mode="json", exclude_none=True),
            created_at=self.created_at,
            state=self.state,
            coalesced_into=self.coalesced_into,
            attempts=self.attempts,
            deliveries=self.deliveries,
            delivered_at=self.delivered_at,
            last_status=self.last_status,
            last_error=self.last_error,
        )


@dataclass(frozen=True)
class Delivery:
    """One send of an event: its first, its deliberate repeat, or one asked for by a test."""

    event: Event
    kind: Literal["first", "repeat", "redelivery"]


class EventBus:
    """Emits events and delivers them; `run()` is the dispatcher, started with the app."""

    def __init__(self, settings: PortaBillingSimSettings) -> None:
        self._url = settings.portabilling_sim_event_url
        self._auth = httpx.BasicAuth(settings.espf_username, settings.espf_password.get_secret_value())
        self._repeat_every = settings.portabilling_sim_repeat_every
        rate = settings.portabilling_sim_events_per_second
        self._pacer = Pacer(rate) if rate > 0 else None
        self._slots = asyncio.Semaphore(settings.portabilling_sim_event_concurrency)
        self._http = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_SECONDS)
        self.events: dict[int, Event] = {}
        # PortaBilling never numbers two events alike, and a receiver remembers the numbers it has seen
        # (beyond this simulator's restarts, which forget everything): numbered from the clock, in ms.
        self._next_i_event = time.time_ns() // 1_000_000
        self._emitted = 0  # events emitted so far: every `repeat_every`th is delivered twice
        self._queue: deque[Delivery] = deque()
        self._held = False
        self._one_at_a_time = 0  # the next this many deliveries go alone (a released batch's order)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- what the control API does ---

    def emit(self, event_type: str, *, i_account: int | None = None, i_customer: int | None = None) -> Event:
        """A new event about an account or a customer, queued behind the others."""
        i_event = self._next_i_event
        self._next_i_event += 1
        self._emitted += 1
        variables = EspfVariables(i_event=i_event, i_account=i_account, i_customer=i_customer)
        repeat = self._repeat_every > 0 and self._emitted % self._repeat_every == 0
        event = Event(EspfEvent(event_type=event_type, variables=variables), repeat)
        self.events[i_event] = event
        if is_coalesced(event_type):
            self._coalesce_into(event)
        self._enqueue(Delivery(event, "first"))
        return event

    def hold(self) -> None:
        """Start no delivery until `release` (those in flight go on)."""
        self._held = True

    def release(self, order: Literal["fifo", "reverse"]) -> int:
        """Deliver what was held, in order or reversed; returns how many deliveries were waiting."""
        waiting = len(self._queue)
        if order == "reverse" and waiting:
            self._queue.reverse()
            self._one_at_a_time = waiting
        self._held = False
        self._wake.set()
        return waiting

    def redeliver(self, i_event: int) -> Event:
        """Send a delivered event once more. KeyError: no such event; ValueError: not delivered yet."""
        event = self.events[i_event]
        if event.state != "delivered":
            raise ValueError(f"event {i_event} is {event.state}, not delivered")
        self._enqueue(Delivery(event, "redelivery"))
        return event

    def list(self, *, i_account: int | None = None, i_customer: int | None = None) -> list[Event]:
        """The events emitted (about that account or customer), oldest first."""
        return [
            e
            for e in self.events.values()
            if (i_account is None or e.wire.variables.i_account == i_account)
            and (i_customer is None or e.wire.variables.i_customer == i_customer)
        ]

    # --- the dispatcher ---

    async def run(self) -> None:
        """Start deliveries in queue order, up to the concurrency limit, for as long as the app runs."""
        while True:
            await self._ready()
            if self._one_at_a_time:
                self._one_at_a_time -= 1
                await self._deliver(self._queue.popleft())
                continue
            await self._slots.acquire()
            if self._held or not self._queue:  # held, or coalesced away, while waiting for a slot
                self._slots.release()
                continue
            task = asyncio.create_task(self._deliver_in_slot(self._queue.popleft()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop every delivery in flight and close the connections."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._http.aclose()

    def _enqueue(self, delivery: Delivery) -> None:
        self._queue.append(delivery)
        self._wake.set()

    def _coalesce_into(self, event: Event) -> None:
        for queued in [d for d in self._queue if d.kind == "first"]:
            older = queued.event
            if older.event_type == event.event_type and older.entity == event.entity:
                self._queue.remove(queued)
                older.state, older.coalesced_into = "coalesced", event.i_event

    async def _ready(self) -> None:
        while self._held or not self._queue:
            self._wake.clear()
            await self._wake.wait()

    async def _deliver_in_slot(self, delivery: Delivery) -> None:
        try:
            await self._deliver(delivery)
        finally:
            self._slots.release()

    async def _deliver(self, delivery: Delivery) -> None:
        """POST the event until the receiver answers 200."""
        event = delivery.event
        body = event.wire.wire()
        backoff = FIRST_BACKOFF_SECONDS
        while not await self._attempt(event, body):
            log.info(
                "event %d %s: %s; again in %.1f s",
                event.i_event,
                event.event_type,
                event.last_status or event.last_error,
                backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        event.deliveries += 1
        if event.delivered_at is None:
            event.state, event.delivered_at = "delivered", datetime.now(UTC)
        if delivery.kind == "first" and event.repeat:
            self._enqueue(Delivery(event, "repeat"))

    async def _attempt(self, event: Event, body: dict[str, object]) -> bool:
        if self._pacer is not None:
            await self._pacer.wait()
        event.attempts += 1
        try:
            response = await self._http.post(
                self._url, json=body, auth=self._auth, headers={"Date": formatdate(usegmt=True)}
            )
        except httpx.HTTPError as exc:
            event.last_status, event.last_error = None, type(exc).__name__
            return False
        event.last_status, event.last_error = response.status_code, None
        return response.status_code == 200
