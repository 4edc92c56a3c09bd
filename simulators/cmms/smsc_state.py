"""What the simulated SMSC does with the messages Kannel submits (set at run time by the tests)."""

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel


class SmscOutcome(StrEnum):
    delivered = "delivered"  # taken, in the outbox, and a "delivered" report where asked
    undelivered = "undelivered"  # taken, never reaches the phone (not in the outbox): "undelivered" report
    rejected = "rejected"  # refused for good (e.g. an unknown subscriber)
    unavailable = "unavailable"  # "retry later": Kannel keeps the message and tries again


class SmscBehaviour(BaseModel):
    """`PUT /_sim/smsc`: what the SMSC does with the messages submitted from now on."""

    outcome: SmscOutcome = SmscOutcome.delivered


@dataclass
class Smsc:
    """The SMSC's mutable state in one simulator process (not kept across restarts)."""

    behaviour: SmscBehaviour = field(default_factory=SmscBehaviour)
    submissions: int = 0
