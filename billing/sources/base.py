"""Where billing's truth lives: the one interface the provisioning and rollout activities read it through.

Two sources: the built-in billing (this service's own tables, the embedded default) and PortaBilling
beside us (`BILLING_SOURCE=portabilling`: its JSON API is read, its ESPF status API is written). The
workflows are the same for both; only what an activity reads and where it records the outcome differ.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from billing.models import MessagingState, PushStatus
from contracts.cmms import CmmsAccount
from contracts.rollouts import AccountPage


class BillingRefusal(Exception):
    """Billing holds something the CMMS can never take (an IMEI that is not 15 digits, say): fail the
    push for good, as a CMMS refusal does; the message says what, in words, and carries no secret."""


class BillingUnavailable(Exception):
    """Billing cannot be read right now (PortaBilling down or refusing our login): try again later.

    `misconfigured`: it answers but will not serve us (a wrong password or URL), which an operator must fix.
    """

    def __init__(self, message: str, *, misconfigured: bool = False) -> None:
        super().__init__(message)
        self.misconfigured = misconfigured


class StatusRefused(Exception):
    """Billing answered and refused to keep a push's outcome (PortaBilling's status API: a body it will not
    take, or the account gone from it, `gone`): the push itself is done, and repeating it would not help.
    The message says why, in words, and carries no secret."""

    def __init__(self, message: str, *, gone: bool) -> None:
        super().__init__(message)
        self.gone = gone


@dataclass(frozen=True)
class Desired:
    """What the CMMS should hold for one account, and what that depends on.

    `record` None: billing no longer has the account (terminated, closed, deleted): the CMMS record
    under `cmms_account_id`, if any, is removed. `retired_cmms_ids`: keys the account was held under
    before (its id changed in billing), removed once the CMMS holds it under the new one.
    """

    cmms_account_id: str | None
    record: CmmsAccount | None
    customer_id: str | None = None
    retired_cmms_ids: tuple[str, ...] = ()
    wake_at: datetime | None = None  # when the desired state changes by itself
    messaging_driven: bool = False  # billing drives messaging (else `record.messaging_enabled` True hands it back)
    customer_revision: int | None = None


@dataclass(frozen=True)
class Outcome:
    """How a push ended, for billing to show (and, beside PortaBilling, to tell PortaBilling)."""

    state: PushStatus
    error: str | None = None
    cmms_account_id: str | None = None
    cmms_version: int | None = None
    # The account's messaging as the CMMS confirmed it while billing drives it; None: billing no longer
    # drives it; False: leave it as recorded.
    messaging: MessagingState | Literal[False] | None = False
    removed: bool = False  # the CMMS no longer holds the account


@dataclass(frozen=True)
class ListedAccount:
    """An account a reconciliation compares: the key the CMMS holds it under, its key in the workflows,
    and the record the CMMS should hold (None: billing holds what the CMMS can never take)."""

    cmms_account_id: str
    account_id: str
    record: CmmsAccount | None


@dataclass(frozen=True)
class ListedPage:
    accounts: list[ListedAccount]  # by `cmms_account_id`, in byte order
    next_after: str | None  # None: this was the last page


class AccountLister(Protocol):
    """A billing source whose accounts a reconciliation pages through itself (PortaBilling: the built-in
    billing's tables are read by the reconciliation's own queries)."""

    async def reconciliation_page(self, after: str | None, limit: int, now: datetime) -> ListedPage:
        """The live accounts whose CMMS key sorts after `after` (by byte value), at most `limit`."""
        ...

    async def account_key_of(self, cmms_account_id: str) -> str | None:
        """The workflow key of the live account held under this CMMS key; None when billing has none."""
        ...


class BillingSource(Protocol):
    """What the activities need from billing; `account_id` is the account's key in the workflows."""

    async def expire_due(self, account_id: str, now: datetime) -> None:
        """Write off what expired by `now` in billing's own books (the built-in billing's wallet units), the
        step before `desired`; reading the desired state itself writes nothing."""
        ...

    async def desired(self, account_id: str, now: datetime) -> Desired:
        """The account's desired CMMS record at `now`, as billing holds it (read only). Raises
        `BillingUnavailable`, `BillingRefusal`, or (built-in billing, an account it never had) `LookupError`."""
        ...

    async def record(self, account_id: str, outcome: Outcome) -> None:
        """Keep the push's outcome where billing shows it. Raises `BillingUnavailable` (try again later) or
        `StatusRefused` (billing will not take it: the push stands)."""
        ...

    async def customer_page(self, customer_id: str, after: str | None, count_total: bool) -> AccountPage:
        """One page of the accounts a change of the customer re-provisions; `after` is the previous
        page's `next_after` (opaque)."""
        ...

    async def failed_among(self, account_ids: list[str]) -> int:
        """How many of `account_ids` the CMMS last refused for good."""
        ...
