"""The CMMS step every use case shares: make the CMMS hold what billing says, and record the outcome."""

import logging
import time
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlmodel import col, update
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.business_metrics import CmmsOperation, cmms_called
from billing.db import SessionMaker, snapshot, transaction
from billing.messaging import MESSAGING, messaging_state
from billing.models import Account, AccountStatus, MessagingState, ProvisioningState, utcnow
from billing.provisioning import desired_state
from cmms.client import CmmsClient, CmmsMisconfigured, CmmsRejected, CmmsUnavailable
from contracts.provisioning import (
    ACCOUNT_NOT_FOUND,
    CMMS_MAX_RETRY_INTERVAL,
    CMMS_REJECTED,
    ProvisionAccountInput,
    ProvisionAccountResult,
)
from core.settings import Settings
from services.wallets import expire_due


class ProvisioningActivities:
    def __init__(self, sessions: SessionMaker, cmms: CmmsClient, settings: Settings) -> None:
        self._sessions = sessions
        self._cmms = cmms
        self._settings = settings

    @activity.defn(name="provision_account")
    async def provision_account(self, request: ProvisionAccountInput) -> ProvisionAccountResult:
        """Make the CMMS hold the account as billing has it now: create, update, or (terminated) remove.

        Idempotent in the CMMS, so safe to repeat. The password is read here and sent here: it never
        enters a workflow's history.
        """
        now = _as_of(request.as_of)
        # Units whose top-up expired are written off first (the ledger dates it at the expiry), so the push
        # and the wallet agree; nothing on a terminated account.
        await expire_due(self._sessions, request.account_id, MESSAGING, now)
        async with snapshot(self._sessions) as session:
            account = await session.get(Account, request.account_id)
            if account is None:
                raise ApplicationError(
                    f"account {request.account_id} does not exist", type=ACCOUNT_NOT_FOUND, non_retryable=True
                )
            terminated = account.status == AccountStatus.terminated
            desired = None if terminated else await desired_state(session, account, self._settings, now=now)
        operation: CmmsOperation = "delete" if desired is None else "upsert"
        started = time.monotonic()
        try:
            if desired is None:
                await self._cmms.delete_account(request.account_id)
                cmms_called(operation, "ok", time.monotonic() - started)
                await self._record(request.account_id, ProvisioningState.ok, None)
                return ProvisionAccountResult(account_id=request.account_id, cmms_version=None, removed=True)
            record = await self._cmms.upsert_account(request.account_id, desired.record)
            cmms_called(operation, "ok", time.monotonic() - started)
        except CmmsUnavailable as err:
            cmms_called(operation, "unavailable", time.monotonic() - started)
            reason = _unavailable(err)
            await self._record(request.account_id, ProvisioningState.retry, reason)
            delay = min(timedelta(seconds=err.retry_after), CMMS_MAX_RETRY_INTERVAL) if err.retry_after else None
            # Benign: the SDK then logs the failure at debug, so the line above is the one per retry.
            raise ApplicationError(
                reason,
                type=type(err).__name__,
                next_retry_delay=delay,
                category=ApplicationErrorCategory.BENIGN,
            ) from err
        except CmmsRejected as err:
            cmms_called(operation, "rejected", time.monotonic() - started)
            await self._record(request.account_id, ProvisioningState.failed, f"CMMS rejected the account: {err}")
            raise ApplicationError(f"CMMS rejected the account: {err}", type=CMMS_REJECTED, non_retryable=True) from err
        # What billing drives is recorded as the CMMS confirmed it; a hand-back records that billing no
        # longer drives it, so the next pushes leave the CMMS's messaging alone.
        messaging: MessagingState | Literal[False] | None = False
        if desired.messaging_driven:
            messaging = messaging_state(bool(record.messaging_enabled))
        elif desired.record.messaging_enabled is not None:
            messaging = None
        await self._record(
            request.account_id, ProvisioningState.ok, None, cmms_version=record.version, messaging=messaging
        )
        return ProvisionAccountResult(
            account_id=request.account_id,
            customer_id=desired.customer_id,
            cmms_version=record.version,
            wake_at=desired.wake_at,
            customer_revision=desired.customer_revision,
        )

    async def _record(
        self,
        account_id: str,
        state: ProvisioningState,
        error: str | None,
        *,
        cmms_version: int | None = None,
        messaging: MessagingState | Literal[False] | None = False,
    ) -> None:
        """`messaging`: the account's messaging state to record (None: billing no longer drives it; False:
        leave it as it is)."""
        # Plain UPDATEs, no load first: the fewer statements, the shorter SQLite's write lock is held.
        outcome: dict[str, Any] = {
            "provisioning_state": state,
            "last_error": error[:1000] if error else None,
            "updated_at": utcnow(),
        }
        if cmms_version is not None:
            outcome["cmms_version"] = cmms_version
        if messaging is not False:  # shown on the wallet (use case 4)
            outcome["messaging_state"] = messaging
        async with transaction(self._sessions) as session:
            await session.exec(update(Account).where(col(Account.account_id) == account_id).values(outcome))


def _unavailable(err: CmmsUnavailable) -> str:
    """Log and count one failed try at an unavailable CMMS; returns the reason, in words.

    One line a try, without a traceback. A CMMS that refuses us (a rotated token, a wrong URL) is an
    error: it will not pass by itself, so it is what operations alert on (the log line, and the
    `cmms_unavailable` counter with `kind="misconfigured"`); a passing outage is a warning."""
    misconfigured = isinstance(err, CmmsMisconfigured)
    if misconfigured:
        reason = f"CMMS refuses our requests (check CMMS_TOKEN and CMMS_URL), retrying: {err}"
    else:
        reason = f"CMMS unavailable, retrying: {err}"
    activity.logger.log(logging.ERROR if misconfigured else logging.WARNING, "%s", reason)
    counter = activity.metric_meter().create_counter(
        "cmms_unavailable", "Failed tries at the CMMS that will be retried, by kind and HTTP status"
    )
    kind = "misconfigured" if misconfigured else "outage"
    counter.add(1, {"kind": kind, "status": str(err.status) if err.status is not None else "none"})
    return reason


def _as_of(requested: datetime | None) -> datetime:
    """The later of the caller's clock and ours: a workflow's clock runs ahead under time skipping, while
    on a real server ours is the fresher one (an attempt retried after a CMMS outage runs later)."""
    now = utcnow()
    return max(requested, now) if requested is not None else now
