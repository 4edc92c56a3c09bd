"""The steps of a bulk import: page its rows (billing), compare an `in_cmms` row with the CMMS's record
(one CMMS call: on the rate-limited task queue), and push a page through the accounts' own workflows.

Each is safe to repeat: a page is read, a comparison writes only the outcome of an account still waiting
for its first push, and a push is the account workflow's (idempotent) one.
"""

from sqlmodel import col, select, update
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.account_sync import sync_accounts
from billing.db import SessionMaker, snapshot, transaction
from billing.messaging import messaging_state
from billing.models import Account, Import, ImportRow, PushStatus, utcnow
from billing.sources.base import BillingSource
from clients.cmms import CmmsClient, CmmsRejected, CmmsUnavailable
from contracts.cmms import CmmsAccount, CmmsRecord, password_digest
from contracts.imports import (
    AdoptInput,
    AdoptResult,
    ImportedRow,
    ImportPage,
    ImportPageInput,
    PushImportInput,
    PushImportResult,
)
from contracts.provisioning import CMMS_REJECTED
from core.settings import ImportSettings


class ImportActivities:
    def __init__(
        self,
        sessions: SessionMaker,
        source: BillingSource,
        cmms: CmmsClient,
        client: Client,
        settings: ImportSettings,
        task_queue: str,
    ) -> None:
        self._sessions = sessions
        self._source = source  # the built-in billing: imports create its accounts
        self._cmms = cmms
        self._client = client
        self._settings = settings
        self._task_queue = task_queue  # the accounts' workflows'

    @activity.defn(name="read_import_page")
    async def read_import_page(self, request: ImportPageInput) -> ImportPage:
        """A page of the import's rows in account id order after `after_account_id` (the file's counts
        with the first)."""
        limit = self._settings.page_size
        async with snapshot(self._sessions) as session:
            query = select(ImportRow).where(ImportRow.import_id == request.import_id)
            if request.after_account_id is not None:
                query = query.where(col(ImportRow.account_id) > request.after_account_id)
            rows = list(await session.exec(query.order_by(col(ImportRow.account_id)).limit(limit)))
            page = ImportPage(
                rows=[ImportedRow(account_id=r.account_id, in_cmms=r.in_cmms) for r in rows],
                next_after=rows[-1].account_id if len(rows) == limit else None,
            )
            if request.after_account_id is None:
                found = await session.get(Import, request.import_id)
                if found is None:  # only a hand-started run can get here: the API stores the import first
                    raise ApplicationError(f"import {request.import_id} does not exist", non_retryable=True)
                page.total, page.accepted, page.rejected = found.total, found.accepted, len(found.rejected)
        return page

    @activity.defn(name="compare_imported_account")
    async def compare_imported_account(self, request: AdoptInput) -> AdoptResult:
        """Compare what the CMMS holds for an `in_cmms` row with what billing says (its password by the
        CMMS's digest of it). The same: the account is recorded as in step with the CMMS's version, and
        needs no push. Different or missing: the import pushes it (a repair). Billing's password is the
        row's, so an adopted account keeps the one its phone has."""
        account_id = request.account_id
        desired = await self._source.desired(account_id, utcnow())
        try:
            held = await self._cmms.get_account(account_id)
        except CmmsUnavailable as err:
            raise ApplicationError(str(err), type=type(err).__name__) from err
        except CmmsRejected as err:
            raise ApplicationError(f"CMMS refused the read: {err}", type=CMMS_REJECTED, non_retryable=True) from err
        if held is None:
            return AdoptResult(account_id=account_id, outcome="missing")
        if desired.record is None or not _same(account_id, desired.record, held):
            return AdoptResult(account_id=account_id, outcome="different")
        if desired.wake_at is not None:
            # Its wallet expires by itself: the account's workflow must be there to wake, so it is pushed
            # all the same (the same record: the CMMS keeps it as it is).
            return AdoptResult(account_id=account_id, outcome="same", push=True)
        values: dict[str, object] = {
            "provisioning_state": PushStatus.ok,
            "last_error": None,
            "cmms_version": held.version,
            "updated_at": utcnow(),
        }
        if desired.messaging_driven:
            values["messaging_state"] = messaging_state(held.messaging_enabled)
        # Only an account no push has reached yet: a change made meanwhile was pushed with a newer outcome.
        async with transaction(self._sessions) as session:
            await session.exec(
                update(Account)
                .where(col(Account.account_id) == account_id, col(Account.provisioning_state) == PushStatus.in_progress)
                .values(values)
            )
        return AdoptResult(account_id=account_id, outcome="same")

    @activity.defn(name="push_import_page")
    async def push_import_page(self, request: PushImportInput) -> PushImportResult:
        """Have each account's own workflow push billing's state (so an import never overtakes a change
        made meanwhile), IMPORT_WINDOW at a time, and wait until the CMMS holds it. Heartbeats the accounts
        done, so a retry after a lost worker carries on where it was."""
        window = self._settings.window
        await sync_accounts(self._sessions, self._client, self._task_queue, request.account_ids, window)
        failed = await self._source.failed_among(request.account_ids)
        return PushImportResult(done=len(request.account_ids) - failed, failed=failed)


def _same(account_id: str, wanted: CmmsAccount, held: CmmsRecord) -> bool:
    """Whether the CMMS's record is what billing would push (messaging only where billing drives it)."""
    if held.password_digest != password_digest(account_id, wanted.password.get_secret_value()):
        return False
    if (held.imei, held.profile, held.domain, held.blocked) != (
        wanted.imei,
        wanted.profile,
        wanted.domain,
        wanted.blocked,
    ):
        return False
    return wanted.messaging_enabled is None or wanted.messaging_enabled == held.messaging_enabled
