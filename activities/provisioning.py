"""The CMMS step every use case shares: make the CMMS hold what billing says, and record the outcome."""

from datetime import datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from billing.db import FOR_CHANGE, SessionMaker, snapshot, transaction
from billing.messaging import MESSAGING, messaging_state
from billing.models import Account, AccountStatus, ProvisioningState, Wallet, utcnow
from billing.provisioning import desired_state
from cmms.client import CmmsClient, CmmsRejected, CmmsUnavailable
from contracts.provisioning import (
    ACCOUNT_NOT_FOUND,
    CMMS_MAX_RETRY_INTERVAL,
    CMMS_REJECTED,
    ProvisionAccountInput,
    ProvisionAccountResult,
)
from core.settings import Settings


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
        async with snapshot(self._sessions) as session:
            account = await session.get(Account, request.account_id)
            if account is None:
                raise ApplicationError(
                    f"account {request.account_id} does not exist", type=ACCOUNT_NOT_FOUND, non_retryable=True
                )
            terminated = account.status == AccountStatus.terminated
            now = _as_of(request.as_of)
            desired = None if terminated else await desired_state(session, account, self._settings, now=now)
        try:
            if desired is None:
                await self._cmms.delete_account(request.account_id)
                await self._record(request.account_id, ProvisioningState.ok, None)
                return ProvisionAccountResult(account_id=request.account_id, cmms_version=None, removed=True)
            record = await self._cmms.upsert_account(request.account_id, desired.record)
        except CmmsUnavailable as err:
            await self._record(request.account_id, ProvisioningState.retry, f"CMMS unavailable, retrying: {err}")
            delay = min(timedelta(seconds=err.retry_after), CMMS_MAX_RETRY_INTERVAL) if err.retry_after else None
            raise ApplicationError(str(err), type="CmmsUnavailable", next_retry_delay=delay) from err
        except CmmsRejected as err:
            await self._record(request.account_id, ProvisioningState.failed, f"CMMS rejected the account: {err}")
            raise ApplicationError(f"CMMS rejected the account: {err}", type=CMMS_REJECTED, non_retryable=True) from err
        confirmed = record.messaging_enabled if desired.record.messaging_enabled is not None else None
        await self._record(
            request.account_id, ProvisioningState.ok, None, cmms_version=record.version, messaging=confirmed
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
        messaging: bool | None = None,
    ) -> None:
        async with transaction(self._sessions) as session:
            account = await session.get_one(Account, account_id, with_for_update=FOR_CHANGE)
            account.provisioning_state = state
            account.last_error = error[:1000] if error else None
            if cmms_version is not None:
                account.cmms_version = cmms_version
            account.updated_at = utcnow()
            session.add(account)
            if messaging is not None:  # what the CMMS confirmed, shown on the wallet (use case 4)
                wallet = await session.get(Wallet, (account_id, MESSAGING), with_for_update=True)
                if wallet is not None:
                    wallet.messaging_state = messaging_state(messaging)
                    session.add(wallet)


def _as_of(requested: datetime | None) -> datetime:
    """The later of the caller's clock and ours: a workflow's clock runs ahead under time skipping, while
    on a real server ours is the fresher one (an attempt retried after a CMMS outage runs later)."""
    now = utcnow()
    return max(requested, now) if requested is not None else now
