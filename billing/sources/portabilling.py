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
- password: the account's service password (`h323_password`); IMEI: its custom field `PORTABILLING_IMEI_FIELD`;
- profile and domain: the customer's custom fields `profileName` and `domain`, else the defaults;
- blocked: the account or its customer is blocked, its customer suspended, or the account has reached its
  expiration date (00:00 UTC of that date; the account's workflow wakes then);
- messaging: driven only when the product's messaging service policy sends push events to the AudioCodes
  CMMS (read where PORTABILLING_MESSAGING_POLICY_PATH says): off after `Account/Service/Msg/QuotaExceeded`
  or `Account/ZeroAvailableFunds`, on again after `Account/AvailableFundsAppear` (the latest stored event
  decides; none kept: as last pushed; never said: on). No wallet is read: PortaBilling has no public
  method for one ("Messaging service policy attributes", "Events that ESPF handlers support").
"""

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from billing.db import SessionMaker, insert_or, snapshot, transaction
from billing.models import MessagingState, PortaBillingAccount, PortaBillingEvent, PushStatus, utcnow
from billing.provisioning import DOMAIN_FIELD, PROFILE_FIELD
from billing.sources.base import BillingRefusal, BillingUnavailable, Desired, Outcome, StatusRefused
from clients.portabilling.client import (
    PortaBillingClient,
    PortaBillingMisconfigured,
    PortaBillingRejected,
    PortaBillingUnavailable,
)
from contracts.cmms import CmmsAccount
from contracts.portabilling import (
    MESSAGING_EVENT_TYPES,
    MESSAGING_SUSPENDED_BY,
    PbAccount,
    PbProduct,
    ProvisioningStatus,
    ShapeNotFound,
)
from contracts.rollouts import AccountPage
from core.settings import PortaBillingSettings, ProvisioningSettings, RolloutSettings

ACCOUNT_PREFIX = "pb-"
CUSTOMER_PREFIX = "pb-"
_IMEI = re.compile(r"\d{15}")
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

    async def expire_due(self, account_id: str, now: datetime) -> None:
        """Nothing: PortaBilling expires its own wallets, and `desired` reads them as they are."""

    async def desired(self, account_id: str, now: datetime) -> Desired:
        i_account = parse_key(account_id)
        with _reading(f"account {i_account}"):
            # What was pushed last (kept here) and the account (PortaBilling's), read at once.
            pushed, account = await asyncio.gather(self._pushed(account_id, i_account), self._client.account(i_account))
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
        imei = account_fields.get(self._settings.imei_field) or None
        if imei is not None and not _IMEI.fullmatch(imei):
            raise BillingRefusal(f"the account's {self._settings.imei_field} custom field is not 15 digits")
        expires_at = _expiry(account)
        driven = product is not None and self._pushes_messaging(product)
        messaging = await self._messaging(i_account, pushed) if driven else None
        if not driven and pushed is not None and pushed.messaging_state is not None:
            messaging = True  # the policy was turned off: hand messaging back to the CMMS once
        record = CmmsAccount(
            password=account.service_password,
            imei=imei,
            profile=customer_fields.get(PROFILE_FIELD) or self._provisioning.default_profile,
            domain=customer_fields.get(DOMAIN_FIELD) or self._provisioning.default_domain,
            blocked=account.blocked
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

    async def _pushed(self, account_id: str, i_account: int) -> PortaBillingAccount | None:
        """What is kept of the account, remembered until its push's outcome is recorded (an account's
        pushes come one at a time, from its workflow)."""
        async with snapshot(self._sessions) as session:
            kept = await session.get(PortaBillingAccount, i_account)
        if kept is not None:
            self._read[account_id] = kept
        return kept

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
