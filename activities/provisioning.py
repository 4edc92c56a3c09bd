"""The CMMS step every use case shares: make the CMMS hold what billing says, and record the outcome."""

import logging
import time
from datetime import datetime, timedelta
from typing import Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.business_metrics import CmmsOperation, billing_failed, cmms_called, status_refused
from billing.messaging import messaging_state
from billing.models import MessagingState, PushStatus, utcnow
from billing.sources.base import BillingRefusal, BillingSource, BillingUnavailable, Desired, Outcome, StatusRefused
from clients.cmms import CmmsClient, CmmsMisconfigured, CmmsRejected, CmmsUnavailable
from clients.sip_registrar import RegistrarUnavailable, SipRegistrar
from contracts.provisioning import (
    ACCOUNT_NOT_FOUND,
    BILLING_REFUSED,
    CMMS_MAX_RETRY_INTERVAL,
    CMMS_REJECTED,
    ProvisionAccountInput,
    ProvisionAccountResult,
)


class ProvisioningActivities:
    """`registrar`: the SIP registrar's subscriber table, kept in step after the CMMS in the same push
    (None: no registrar, as beside PortaBilling, where PortaSIP is it)."""

    def __init__(
        self,
        source: BillingSource,
        cmms: CmmsClient,
        registrar: SipRegistrar | None = None,
        idle_horizon: timedelta | None = None,
    ) -> None:
        self._source = source
        self._cmms = cmms
        self._registrar = registrar
        self._idle_horizon = idle_horizon  # None: no sweep wakes accounts, each keeps its own timer

    @activity.defn(name="provision_account")
    async def provision_account(self, request: ProvisionAccountInput) -> ProvisionAccountResult:
        """Make the CMMS hold the account as billing has it now: create, update, or (gone) remove; then
        the SIP registrar, when there is one (a subscriber while the account is neither blocked nor gone).

        Idempotent in both, so safe to repeat. The password is read here and sent here: it never
        enters a workflow's history.
        """
        account_id = request.account_id
        desired = await self._desired(account_id, _as_of(request.as_of))
        key = desired.cmms_account_id
        operation: CmmsOperation = "delete" if desired.record is None else "upsert"
        started = time.monotonic()
        try:
            if desired.record is None:
                for gone in _keys(key, *desired.retired_cmms_ids):
                    await self._cmms.delete_account(gone)
                cmms_called(operation, "ok", time.monotonic() - started)
                await self._hold_subscriber(account_id, desired)
                await self._record(account_id, Outcome(PushStatus.ok, cmms_account_id=key, removed=True))
                return ProvisionAccountResult(account_id=account_id, cmms_version=None, removed=True)
            assert key is not None  # a record to hold is always held under a key
            # The account's id changed in billing: its record under the old id goes first, since the CMMS
            # gives an IMEI to one account only.
            for retired in desired.retired_cmms_ids:
                await self._cmms.delete_account(retired)
            record = await self._cmms.upsert_account(key, desired.record)
            cmms_called(operation, "ok", time.monotonic() - started)
        except CmmsUnavailable as err:
            cmms_called(operation, "unavailable", time.monotonic() - started)
            reason = _unavailable(err)
            await self._record(account_id, Outcome(PushStatus.retry, reason, cmms_account_id=key))
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
            reason = f"CMMS rejected the account: {err}"
            await self._record(account_id, Outcome(PushStatus.failed, reason, cmms_account_id=key))
            raise ApplicationError(reason, type=CMMS_REJECTED, non_retryable=True) from err
        await self._hold_subscriber(account_id, desired)
        # What billing drives is recorded as the CMMS confirmed it; a hand-back records that billing no
        # longer drives it, so the next pushes leave the CMMS's messaging alone.
        messaging: MessagingState | Literal[False] | None = False
        if desired.messaging_driven:
            messaging = messaging_state(bool(record.messaging_enabled))
        elif desired.record.messaging_enabled is not None:
            messaging = None
        outcome = Outcome(PushStatus.ok, cmms_account_id=key, cmms_version=record.version, messaging=messaging)
        await self._record(account_id, outcome)
        return ProvisionAccountResult(
            account_id=account_id,
            customer_id=desired.customer_id,
            cmms_version=record.version,
            wake_at=desired.wake_at,
            wake_swept=self._swept(desired.wake_at, _as_of(request.as_of)),
            customer_revision=desired.customer_revision,
        )

    def _swept(self, wake_at: datetime | None, now: datetime) -> bool:
        """A sweep starts the account's workflow before `wake_at`: it is beyond the idle-timer horizon."""
        return self._idle_horizon is not None and wake_at is not None and wake_at > now + self._idle_horizon

    async def _hold_subscriber(self, account_id: str, desired: Desired) -> None:
        """The registrar's subscriber as the CMMS now holds the account: the account id at its CMMS domain
        with its password (as digests), or no row while it is blocked or gone; rows under a retired id
        or another domain go. A registrar that cannot be written is tried again, CMMS push and all (both
        idempotent), like an unavailable CMMS."""
        if self._registrar is None:
            return
        key = desired.cmms_account_id
        record = desired.record
        try:
            # No password (an imported account that never had one): no row, rather than one any empty
            # password would open.
            if record is None or record.blocked or key is None or not record.password.get_secret_value():
                await self._registrar.remove(_keys(key, *desired.retired_cmms_ids))
            else:
                await self._registrar.put(key, record.domain, record.password, desired.retired_cmms_ids)
        except RegistrarUnavailable as err:
            reason = f"{err}, retrying"
            activity.logger.warning("%s", reason)
            counter = activity.metric_meter().create_counter(
                "sip_registrar_unavailable", "Failed tries at the SIP registrar's database that will be retried"
            )
            counter.add(1)
            await self._record(account_id, Outcome(PushStatus.retry, reason, cmms_account_id=key))
            raise ApplicationError(reason, type=type(err).__name__, category=ApplicationErrorCategory.BENIGN) from err

    async def _desired(self, account_id: str, now: datetime) -> Desired:
        """Billing's desired state, its failures as the retry policy must see them. What expired by `now`
        (a wallet's units) is written off first, so the push and the wallet agree."""
        try:
            await self._source.expire_due(account_id, now)
            return await self._source.desired(account_id, now)
        except LookupError as err:
            raise ApplicationError(str(err), type=ACCOUNT_NOT_FOUND, non_retryable=True) from err
        except BillingRefusal as err:
            billing_failed("refused")
            reason = f"billing holds what the CMMS cannot take: {err}"
            await self._record(account_id, Outcome(PushStatus.failed, reason))
            raise ApplicationError(reason, type=BILLING_REFUSED, non_retryable=True) from err
        except BillingUnavailable as err:
            if err.misconfigured and activity.info().attempt == 1:
                # What an operator must fix (a permission, a custom field, a setting) shows on the
                # account in billing as a RETRY with its reason, once a push rather than on every try.
                await self._record(account_id, Outcome(PushStatus.retry, str(err)))
            raise _billing_unavailable(err) from err

    async def _record(self, account_id: str, outcome: Outcome) -> None:
        """Keep the outcome in billing. Where billing cannot take it now (PortaBilling's status API down),
        the push is tried again, outcome and all (a push is idempotent), so that billing ends up showing
        how it went; a `retry` outcome, whose push is tried again anyway, is only logged. An outcome billing
        refuses (PortaBilling will not take the body, or no longer has the account) is logged and counted,
        and the push stands: repeating it would be refused the same way."""
        try:
            await self._source.record(account_id, outcome)
        except BillingUnavailable as err:
            if outcome.state != PushStatus.retry:
                raise _billing_unavailable(err) from err
            activity.logger.warning("%s", err)
        except StatusRefused as err:
            status_refused("gone" if err.gone else "refused")
            activity.logger.log(logging.INFO if err.gone else logging.WARNING, "outcome not kept: %s", err)


def _billing_unavailable(err: BillingUnavailable) -> ApplicationError:
    """Log one line a try (an error when an operator must act), count it, and retry without a traceback."""
    billing_failed("misconfigured" if err.misconfigured else "outage")
    activity.logger.log(logging.ERROR if err.misconfigured else logging.WARNING, "%s", err)
    return ApplicationError(str(err), type=type(err).__name__, category=ApplicationErrorCategory.BENIGN)


def _keys(*keys: str | None) -> list[str]:
    return [key for key in dict.fromkeys(keys) if key is not None]


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
