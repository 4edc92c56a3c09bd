"""PortaBilling as a `BillingSource` (`BILLING_SOURCE=portabilling`).

What the CMMS should hold is read over PortaBilling's JSON API each time, never kept: ESPF events are
thin and some are coalesced, so a push acts on PortaBilling's *current* state ("Retrieving data from
PortaBilling"). After every push the outcome is written back with the ESPF status API ("Sending
provisioning status for an account via ESPF API"): `OK`, `RETRY` with the reason while the CMMS is
down, `FAILED` with the CMMS's refusal, so the operator sees it on the account in PortaBilling.

An account is `pb-<i_account>` in the workflows (PortaBilling's ids in events are `i_account`); the
CMMS holds it under its PortaBilling `id` (the SIP login the app registers with). An administrator may
change that id: the key last pushed is kept (`portabilling_account`), and a push under a new id
removes the record under the old one. How the desired record is derived:
- removed: the account is closed (`bill_status` C) or PortaBilling no longer has it;
- password: the account's service password (`h323_password`); an API user whose role hides it is a
  misconfiguration naming the permission to grant (retried, alerted), never an unreadable answer;
- IMEI: its custom field `PORTABILLING_IMEI_FIELD`; profile and domain: the customer's custom fields
  `profileName` and `domain`, else the defaults. A value is read from `db_value` (where public clients
  read and write it), `text_value` as a fallback; a field the installation does not define for the
  account (or customer) is a misconfiguration naming it (retried, alerted), never a silent default;
- blocked: the account or its customer is blocked, its customer suspended, the account is not yet
  active (`bill_status` I) or has a `bill_status` this release does not know (a warning names the
  letter), or the account has reached its expiration date (00:00 UTC of that date; the account's
  workflow wakes then);
- messaging: driven only when the product's messaging service policy sends push events to the AudioCodes
  CMMS (read where PORTABILLING_MESSAGING_POLICY_PATH says): off after `Account/Service/Msg/QuotaExceeded`
  or `Account/ZeroAvailableFunds`, on again after `Account/AvailableFundsAppear` (the latest stored event
  decides; none kept: as last pushed; never said: on). No wallet is read: PortaBilling has no public
  method for one ("Messaging service policy attributes", "Events that ESPF handlers support").
"""

import asyncio
import bisect
import logging
import re
import time as clock
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func
from sqlmodel import col, select

from billing.db import SessionMaker, insert_or, snapshot, transaction
from billing.models import MessagingState, PortaBillingAccount, PortaBillingEvent, PushStatus, utcnow
from billing.provisioning import DOMAIN_FIELD, PROFILE_FIELD
from billing.sources.base import (
    BillingRefusal,
    BillingUnavailable,
    Desired,
    ListedAccount,
    ListedPage,
    Outcome,
    StatusRefused,
)
from clients.portabilling.client import (
    AccountEntry,
    PortaBillingClient,
    PortaBillingMisconfigured,
    PortaBillingRejected,
    PortaBillingUnavailable,
)
from contracts.cmms import CmmsAccount
from contracts.portabilling import (
    H323_PASSWORD,
    MESSAGING_EVENT_TYPES,
    MESSAGING_SUSPENDED_BY,
    AccountState,
    PbAccount,
    PbProduct,
    ProvisioningStatus,
    ShapeNotFound,
)
from contracts.rollouts import AccountPage
from core.settings import PortaBillingSettings, ProvisioningSettings, RolloutSettings

log = logging.getLogger(__name__)

ACCOUNT_PREFIX = "pb-"
CUSTOMER_PREFIX = "pb-"
_IMEI = re.compile(r"\d{15}")
# Accounts asked for a page at a time when reconciliation lists them all.
LIST_PAGE = 500
# Accounts read at once by a reconciliation page (each read is a few JSON API calls).
READS_AT_ONCE = 16
# How long the sorted list of accounts a reconciliation run pages through is kept before it is read
# again: a run's first page takes one at most FRESH_INDEX_SECONDS old (so a first page tried again, its
# attempt timed out while a large list was read, takes the list that attempt went on reading), later
# pages one at most INDEX_TTL_SECONDS old.
FRESH_INDEX_SECONDS = 60.0
INDEX_TTL_SECONDS = 300.0
_STATUS: dict[PushStatus, ProvisioningStatus] = {
    PushStatus.ok: "OK",
    PushStatus.retry: "RETRY",
    PushStatus.failed: "FAILED",
    PushStatus.in_progress: "IN_PROGRESS",
}


def account_key(i_account: int) -> str:
    """The account's id in the workflows (`account-pb-<i_account>`) and the API."""
    return f"{ACCOUNT_PREFIX}{i_account}"


def customer_key(i_customer: int) -> str:
    """The customer's id in the workflows (its rollout is `rollout-pb-<i_customer>`)."""
    return f"{CUSTOMER_PREFIX}{i_customer}"


def parse_key(key: str) -> int:
    """The PortaBilling number in `pb-<n>`; LookupError for anything else (not an object of PortaBilling)."""
    number = key.removeprefix(ACCOUNT_PREFIX)
    if key == number or not number.isdigit():
        raise LookupError(f"{key!r} is not a PortaBilling object")
    return int(number)


class PortaBillingSource:
    def __init__(
        self,
        client: PortaBillingClient,
        sessions: SessionMaker,
        settings: PortaBillingSettings,
        provisioning: ProvisioningSettings,
        rollouts: RolloutSettings,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._settings = settings
        self._provisioning = provisioning
        self._rollouts = rollouts
        self._read: dict[str, PortaBillingAccount] = {}  # by account: what `desired` read, for `record`
        # The sorted list of accounts reconciliation pages through: when its reading began, and the reading.
        self._index: tuple[float, asyncio.Task[list[AccountEntry]]] | None = None

    async def expire_due(self, account_id: str, now: datetime) -> None:
        """Nothing: PortaBilling expires its own wallets, and `desired` reads them as they are."""

    async def desired(self, account_id: str, now: datetime) -> Desired:
        return await self._desired(account_id, now, remember=True)

    async def _desired(self, account_id: str, now: datetime, *, remember: bool) -> Desired:
        """`remember`: keep what was read of the account for `record` (a push's read, not a
        reconciliation's, which records nothing)."""
        i_account = parse_key(account_id)
        with _reading(f"account {i_account}"):
            # What was pushed last (kept here) and the account (PortaBilling's), read at once.
            pushed, account = await asyncio.gather(
                self._pushed(account_id, i_account, remember=remember), self._client.account(i_account)
            )
            held = pushed.cmms_account_id if pushed else None
            if account is None or account.closed:
                key = account.id if account else held
                return Desired(cmms_account_id=key, record=None, retired_cmms_ids=_retired(held, key))
            customer, customer_fields, account_fields, product = await asyncio.gather(
                self._client.customer(account.i_customer),
                self._client.customer_custom_fields(account.i_customer),
                self._client.account_custom_fields(account.i_account),
                self._client.product(account.i_product),
            )
        password = self._readable(account, account_fields, customer_fields)
        imei = account_fields.get(self._settings.imei_field) or None
        if imei is not None and not _IMEI.fullmatch(imei):
            raise BillingRefusal(f"the account's {self._settings.imei_field} custom field is not 15 digits")
        expires_at = _expiry(account)
        driven = product is not None and self._pushes_messaging(product)
        messaging = await self._messaging(i_account, pushed) if driven else None
        if not driven and pushed is not None and pushed.messaging_state is not None:
            messaging = True  # the policy was turned off: hand messaging back to the CMMS once
        if account.state == AccountState.unknown:
            log.warning(
                "PortaBilling account %d has bill_status %r, which this release does not know: pushed blocked",
                account.i_account,
                account.bill_status,
            )
        record = CmmsAccount(
            password=password,
            imei=imei,
            profile=customer_fields.get(PROFILE_FIELD) or self._provisioning.default_profile,
            domain=customer_fields.get(DOMAIN_FIELD) or self._provisioning.default_domain,
            blocked=account.blocked
            or account.state in (AccountState.inactive, AccountState.unknown)
            or (customer is not None and (customer.blocked or customer.suspended))
            or (expires_at is not None and expires_at <= now),
            messaging_enabled=messaging,
        )
        return Desired(
            cmms_account_id=account.id,
            record=record,
            customer_id=customer_key(account.i_customer),
            retired_cmms_ids=_retired(held, account.id),
            wake_at=expires_at if expires_at is not None and expires_at > now else None,
            messaging_driven=driven,
        )

    async def record(self, account_id: str, outcome: Outcome) -> None:
        """Tell PortaBilling the outcome, and keep it here (with the key the CMMS holds the account under)
        when it differs from what is kept: most pushes change nothing of it, and a write on every one
        would contend, on SQLite, with the API's writes of the events."""
        i_account = parse_key(account_id)
        kept = self._read.pop(account_id, None)
        changes: dict[str, Any] = {
            "provisioning_state": outcome.state,
            "last_error": outcome.error[:1000] if outcome.error else None,
        }
        if outcome.state == PushStatus.ok:
            changes["cmms_account_id"] = None if outcome.removed else outcome.cmms_account_id
        if outcome.messaging is not False:
            changes["messaging_state"] = outcome.messaging

        async def keep() -> None:
            if kept is not None and all(getattr(kept, name) == value for name, value in changes.items()):
                return
            changes["updated_at"] = utcnow()
            async with transaction(self._sessions) as session:
                row = {"i_account": i_account} | changes
                await session.exec(insert_or(session, PortaBillingAccount, row, key="i_account", update=changes))

        async def tell() -> None:
            status, group = _STATUS[outcome.state], self._settings.status_group
            try:
                with _reading(f"(writing) the status of account {i_account}"):
                    await self._client.post_status(i_account, status, _message(outcome), group=group)
            except BillingRefusal as err:
                # A refusal is final, and the push it reports is done: keep it out of the push's fate.
                rejected = err.__cause__
                gone = isinstance(rejected, PortaBillingRejected) and rejected.status == 404
                raise StatusRefused(str(err), gone=gone) from err

        # Independent, so at once; each runs to its end before a failure of either is raised.
        for failure in await asyncio.gather(keep(), tell(), return_exceptions=True):
            if isinstance(failure, BaseException):
                raise failure

    def _pushes_messaging(self, product: PbProduct) -> bool:
        """Whether the product's messaging service policy sends push events to the AudioCodes CMMS, read
        where PORTABILLING_MESSAGING_POLICY_PATH says; an answer without that shape is retried, and
        alerted on, until an operator sets the path (or empties it: messaging then stays the CMMS's)."""
        path = self._settings.messaging_policy
        if path is None:
            return False
        try:
            return path.flag(product.info) is True
        except ShapeNotFound as err:
            raise BillingUnavailable(
                f"PortaBilling's product {product.i_product} does not show its messaging service policy where "
                f"PORTABILLING_MESSAGING_POLICY_PATH ({path.text}) looks: {err}; set it to where "
                "Product/get_product_info shows the policy's 'Send push event to AudioCodes CMMS' attribute, "
                "or to nothing to leave messaging to the CMMS",
                misconfigured=True,
            ) from None

    async def _messaging(self, i_account: int, pushed: PortaBillingAccount | None) -> bool:
        """Messaging as PortaBilling last said with an event (a wallet run dry suspends it, a top-up
        resumes it); without one kept, as last pushed; without that, on (PortaBilling says when it stops)."""
        async with snapshot(self._sessions) as session:
            latest = await session.exec(
                select(PortaBillingEvent.event_type)
                .where(
                    col(PortaBillingEvent.i_account) == i_account,
                    col(PortaBillingEvent.event_type).in_(sorted(MESSAGING_EVENT_TYPES)),
                )
                .order_by(col(PortaBillingEvent.i_event).desc())
                .limit(1)
            )
            said = latest.first()
        if said is not None:
            return said not in MESSAGING_SUSPENDED_BY
        if pushed is not None and pushed.messaging_state is not None:
            return pushed.messaging_state != MessagingState.suspended
        return True

    def _readable(
        self, account: PbAccount, account_fields: dict[str, str | None], customer_fields: dict[str, str | None]
    ) -> SecretStr:
        """What PortaBilling does not show us is a misconfiguration an operator must fix (retried and
        alerted, naming what to fix), never a silent default: a hidden service password, or a custom
        field the installation does not define. Returns the service password."""
        if account.service_password is None:
            raise BillingUnavailable(
                f"PortaBilling does not show account {account.i_account}'s service password ({H323_PASSWORD}) "
                f"to API user {self._client.login!r}: grant its role read access to the account's "
                f"{H323_PASSWORD} (the service password), or log in as a user whose role has it (PORTABILLING_LOGIN)",
                misconfigured=True,
            )
        missing = []
        if self._settings.imei_field not in account_fields:
            missing.append(f"account custom field {self._settings.imei_field!r} (PORTABILLING_IMEI_FIELD)")
        missing += [
            f"customer custom field {name!r}" for name in (PROFILE_FIELD, DOMAIN_FIELD) if name not in customer_fields
        ]
        if missing:
            raise BillingUnavailable(
                f"PortaBilling has no {' and no '.join(missing)} for account {account.i_account} "
                f"(customer {account.i_customer}): define it in PortaBilling's custom data and enable it in the "
                "customer's class (or, for the IMEI, set PORTABILLING_IMEI_FIELD to the name the field has)",
                misconfigured=True,
            )
        return account.service_password

    async def _pushed(self, account_id: str, i_account: int, *, remember: bool = True) -> PortaBillingAccount | None:
        """What is kept of the account, remembered until its push's outcome is recorded (an account's
        pushes come one at a time, from its workflow)."""
        async with snapshot(self._sessions) as session:
            kept = await session.get(PortaBillingAccount, i_account)
        if kept is not None and remember:
            self._read[account_id] = kept
        return kept

    # --- reconciliation: every account PortaBilling has, beside the CMMS's records ---

    async def reconciliation_page(self, after: str | None, limit: int, now: datetime) -> ListedPage:
        """The live accounts whose CMMS key (`id`) sorts after `after`, `limit` of them in the order the
        CMMS lists its records (by byte value), each with the record the CMMS should hold. PortaBilling
        lists accounts by i_account, so the whole list (ids and `bill_status` only) is read and sorted
        first, at a run's first page (unless read within `FRESH_INDEX_SECONDS`) and again after
        `INDEX_TTL_SECONDS`; a page then reads its accounts as a push would. An account whose id
        changed since, or that closed, is left out: its own events bring it up to date, and a record
        under its old id is an orphan checked again (`account_key_of`) before anything is deleted."""
        index = await self._accounts_index(FRESH_INDEX_SECONDS if after is None else INDEX_TTL_SECONDS)
        ids = [entry.id for entry in index]
        start = bisect.bisect_right(ids, after) if after is not None else 0
        chosen = index[start : start + limit]
        gate = asyncio.Semaphore(READS_AT_ONCE)

        async def read(entry: AccountEntry) -> ListedAccount | None:
            key = account_key(entry.i_account)
            async with gate:
                try:
                    desired = await self._desired(key, now, remember=False)
                except BillingRefusal:
                    return ListedAccount(cmms_account_id=entry.id, account_id=key, record=None)
            if desired.record is None or desired.cmms_account_id != entry.id:
                return None
            return ListedAccount(cmms_account_id=entry.id, account_id=key, record=desired.record)

        listed = [a for a in await asyncio.gather(*(read(e) for e in chosen)) if a is not None]
        more = start + limit < len(index)
        return ListedPage(accounts=listed, next_after=chosen[-1].id if more and chosen else None)

    async def account_key_of(self, cmms_account_id: str) -> str | None:
        """The key (`pb-<i_account>`) of the live account PortaBilling holds under this id, if any."""
        with _reading(f"account {cmms_account_id!r}"):
            account = await self._client.account_by_id(cmms_account_id)
        if account is None or account.closed:
            return None
        return account_key(account.i_account)

    async def _accounts_index(self, max_age: float) -> list[AccountEntry]:
        """Every account that is not closed, by id in byte order (one per id: PortaBilling gives an id to
        one live account at a time), read at most `max_age` seconds ago. The reading goes on when the
        caller is cancelled (its activity timed out), for the next caller to take."""
        now = clock.monotonic()
        if self._index is not None:
            started, reading = self._index
            failed = reading.done() and (reading.cancelled() or reading.exception() is not None)
            if now - started <= max_age and not failed:
                return await asyncio.shield(reading)
        reading = asyncio.get_running_loop().create_task(self._list_all())
        self._index = (now, reading)
        return await asyncio.shield(reading)

    async def _list_all(self) -> list[AccountEntry]:
        entries: dict[str, AccountEntry] = {}
        offset = 0
        with _reading("the list of accounts"):
            while True:
                page = await self._client.accounts(offset=offset, limit=LIST_PAGE)
                for entry in page.accounts:
                    if AccountState.of(entry.bill_status) != AccountState.closed:
                        entries.setdefault(entry.id, entry)
                offset += LIST_PAGE
                if len(page.accounts) < LIST_PAGE or (page.total is not None and offset >= page.total):
                    break
        return sorted(entries.values(), key=lambda entry: entry.id)

    async def customer_page(self, customer_id: str, after: str | None, count_total: bool) -> AccountPage:
        """Pages of the customer's accounts as PortaBilling lists them; the cursor is the next offset."""
        i_customer = parse_key(customer_id)
        offset = int(after) if after else 0
        limit = self._rollouts.page_size
        with _reading(f"the accounts of customer {i_customer}"):
            found = await self._client.customer_accounts(i_customer, offset=offset, limit=limit)
        return AccountPage(
            account_ids=[account_key(i) for i in found.i_accounts],
            next_after=str(offset + limit) if len(found.i_accounts) == limit else None,
            total=found.total if count_total else None,
            customer_revision=0,  # PortaBilling's changes arrive as events, each one signalled
        )

    async def failed_among(self, account_ids: list[str]) -> int:
        numbers = [parse_key(key) for key in account_ids]
        async with self._sessions() as session:
            failed = await session.exec(
                select(func.count())
                .select_from(PortaBillingAccount)
                .where(
                    col(PortaBillingAccount.i_account).in_(numbers),
                    col(PortaBillingAccount.provisioning_state) == PushStatus.failed.value,
                )
            )
            return failed.one()


@contextmanager
def _reading(what: str) -> Iterator[None]:
    """The client's failures as the source's: unavailable (retry later) or a refusal (fail for good)."""
    try:
        yield
    except PortaBillingMisconfigured as err:
        why = "refuses our requests (check PORTABILLING_LOGIN, PORTABILLING_PASSWORD and PORTABILLING_URL)"
        raise BillingUnavailable(f"PortaBilling {why} reading {what}: {err}", misconfigured=True) from err
    except PortaBillingUnavailable as err:
        raise BillingUnavailable(f"PortaBilling unavailable reading {what}, retrying: {err}") from err
    except PortaBillingRejected as err:
        raise BillingRefusal(f"PortaBilling refused reading {what}: {err}") from err


def _retired(held: str | None, key: str | None) -> tuple[str, ...]:
    return (held,) if held is not None and held != key else ()


def _expiry(account: PbAccount) -> datetime | None:
    if account.expiration_date is None:
        return None
    return datetime.combine(account.expiration_date, time(0), tzinfo=UTC)


def _message(outcome: Outcome) -> str:
    if outcome.error:
        return outcome.error
    if outcome.removed:
        return "removed from the CMMS"
    version = f" (version {outcome.cmms_version})" if outcome.cmms_version is not None else ""
    return f"the CMMS holds the account as {outcome.cmms_account_id}{version}"
