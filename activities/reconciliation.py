"""The steps of a reconciliation: read a page of each side as keyed digests, and repair what differs.

Both sides are read in account id order by byte value (SQLite's and the CMMS's binary order; PostgreSQL
is told `COLLATE "C"`), so the workflow can merge them. A page entry carries the account id, a keyed
digest of the record and the messaging state: the password is compared as the CMMS's digest of it,
inside the digest, so neither it nor anything it could be guessed from reaches the workflow's history.

With a SIP registrar (SIP_REGISTRAR=kamailio) the CMMS side is the CMMS and the registrar together: the
subscriber rows of each CMMS page's id range are read beside it, by username in the same byte order, and
each id's rows (domain, ha1, ha1b) go into its entry's digest; billing's digest takes the row the
account's push writes, its ha1 computed here from billing's password. So a row lost, changed or left
behind is an account `different` (or `missing`, the CMMS lacking it too), repaired by its own push, which
writes both; or an id `orphaned`, whose CMMS record and rows the run deletes under the same ceiling. The
workflow is the same: it merges two sides as before.

Beside PortaBilling the billing side is PortaBilling's own list of accounts, paged by the source
(`AccountLister`) under the key the CMMS holds each by (its `id`); repairs and the orphans' last check
go from that key back to the account's own (`pb-<i_account>`).
"""

import asyncio
import hashlib
import hmac
import json
import logging
from datetime import timedelta

from pydantic import SecretStr
from sqlalchemy import ColumnElement
from sqlmodel import col, delete, select, update
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.account_sync import heartbeating, sync_accounts
from billing.db import SessionMaker, snapshot, transaction
from billing.models import Account, AccountStatus, PushStatus, ReconciliationOrphan, utcnow
from billing.provisioning import desired_state
from billing.sources.base import AccountLister, BillingSource, BillingUnavailable
from clients.cmms import CmmsClient, CmmsRejected, CmmsUnavailable
from clients.sip_registrar import RegistrarUnavailable, SipRegistrar, Subscriber, ha1, ha1b
from contracts.cmms import CmmsAccount, CmmsRecord, password_digest
from contracts.provisioning import CMMS_MAX_RETRY_INTERVAL
from contracts.reconciliation import (
    BESIDE_PORTABILLING,
    BillingEntry,
    BillingEntryPage,
    CmmsEntry,
    CmmsEntryPage,
    ForgetInput,
    HoldInput,
    OrphanPage,
    OrphanPageInput,
    OrphansInput,
    OrphansResult,
    PageInput,
    RepairInput,
    RepairResult,
)
from core.settings import ProvisioningSettings, ReconciliationSettings

# Accounts whose CMMS record billing vouches for. A pending account's record is its order's business
# (created, or rolled back, by it); a terminated account has no record.
LIVE = (AccountStatus.active, AccountStatus.blocked)
COMPARED = (AccountStatus.pending, *LIVE)
_DIGEST_LABEL = b"reconciliation-digest"
# The digest of an account whose billing data the CMMS can never take: matches no record, so the
# account's own push runs, fails and says why (counted `failed`).
REFUSED_DIGEST = "refused"

# What a digest is made of: a record's fields, and the subscriber rows (domain, ha1, ha1b) beside them.
_Field = str | bool | None | list[list[str]]


class ReconciliationActivities:
    def __init__(
        self,
        sessions: SessionMaker,
        cmms: CmmsClient,
        client: Client,
        settings: ReconciliationSettings,
        *,
        provisioning: ProvisioningSettings,
        secret_key: SecretStr,
        billing_source: str,
        task_queue: str,
        lister: AccountLister | None = None,
        source: BillingSource | None = None,
        registrar: SipRegistrar | None = None,
    ) -> None:
        self._sessions = sessions
        # The SIP registrar's subscriber table (SIP_REGISTRAR=kamailio): compared with the CMMS's records,
        # each account's row folded into its CMMS entry's digest.
        self._registrar = registrar
        self._cmms = cmms
        self._client = client
        self._settings = settings
        self._provisioning = provisioning  # what the CMMS should hold
        self._billing_source = billing_source
        self._lister = lister  # beside PortaBilling: the accounts listed by the source itself
        self._source = source
        self._task_queue = task_queue  # the accounts' workflows', which make the repairs
        # A key of its own, derived from SECRET_KEY: digests in a history say nothing without it.
        self._key = hmac.new(secret_key.get_secret_value().encode(), _DIGEST_LABEL, hashlib.sha256).digest()

    @activity.defn(name="read_billing_page")
    async def read_billing_page(self, request: PageInput) -> BillingEntryPage:
        """A page of billing's accounts (pending, active, blocked) after `request.after`, as digests of
        what the CMMS should hold for each (the provisioning step's own desired state)."""
        if self._billing_source != "builtin":
            if self._lister is None:
                # These tables are empty beside PortaBilling: every CMMS record would pass for an orphan.
                raise ApplicationError(BESIDE_PORTABILLING, type="ReconciliationUnavailable", non_retryable=True)
            return await self._listed_page(self._lister, request)
        now = utcnow()
        async with snapshot(self._sessions) as session:
            dialect = (await session.connection()).dialect.name
            key = _account_id_by_bytes(dialect)
            query = select(Account).where(col(Account.status).in_([s.value for s in COMPARED]))
            if request.after is not None:
                query = query.where(key > request.after)
            accounts = list(await session.exec(query.order_by(key).limit(request.limit)))
            entries = []
            for account in accounts:
                if account.status == AccountStatus.pending:
                    entries.append(BillingEntry(account_id=account.account_id, digest=None, messaging=None))
                    continue
                record = (await desired_state(session, account, self._provisioning, now=now)).record
                entries.append(
                    BillingEntry(
                        account_id=account.account_id,
                        digest=self._desired_digest(account.account_id, record),
                        messaging=record.messaging_enabled,
                    )
                )
        next_after = accounts[-1].account_id if len(accounts) == request.limit else None
        return BillingEntryPage(entries=entries, next_after=next_after)

    async def _listed_page(self, lister: AccountLister, request: PageInput) -> BillingEntryPage:
        """A page of the accounts the source lists (beside PortaBilling), as the same digests."""
        try:
            page = await lister.reconciliation_page(request.after, request.limit, utcnow())
        except BillingUnavailable as err:
            activity.logger.log(logging.ERROR if err.misconfigured else logging.WARNING, "%s", err)
            raise ApplicationError(str(err), type=type(err).__name__) from err
        entries = [
            BillingEntry(
                account_id=listed.cmms_account_id,
                digest=self._desired_digest(listed.cmms_account_id, listed.record) if listed.record else REFUSED_DIGEST,
                messaging=listed.record.messaging_enabled if listed.record else None,
            )
            for listed in page.accounts
        ]
        return BillingEntryPage(entries=entries, next_after=page.next_after)

    @activity.defn(name="read_cmms_page")
    async def read_cmms_page(self, request: PageInput) -> CmmsEntryPage:
        """A page of the CMMS's records after `request.after`, as the same digests. With a SIP registrar,
        the subscriber rows of the same id range are read beside them and folded in: an entry per id
        either holds, its digest over both (a row with no record is an entry too, an orphan or drift)."""
        try:
            page = await self._cmms.list_accounts(request.after, request.limit)
        except CmmsUnavailable as err:
            raise _retry(err) from err
        except CmmsRejected as err:
            # Without its records there is nothing to compare: the run fails and says why.
            raise ApplicationError(f"CMMS refused the record list: {err}", non_retryable=True) from err
        if self._registrar is None:
            entries = [
                CmmsEntry(account_id=r.account_id, digest=self._held_digest(r), messaging=r.messaging_enabled)
                for r in page.accounts
            ]
            return CmmsEntryPage(entries=entries, next_after=page.next)
        records, next_after = page.accounts, page.next
        try:
            rows, complete = await self._registrar.page(request.after, next_after, request.limit)
        except RegistrarUnavailable as err:
            activity.logger.warning("%s, retrying", err)
            raise _registrar_retry(err) from err
        if not complete:
            # More rows than a page before the CMMS page's end: this page ends at the last row's username,
            # and the next one starts after it (the CMMS's records after it are read again then).
            next_after = rows[-1].username
            records = [r for r in records if r.account_id <= next_after]
        held = {r.account_id: r for r in records}
        subscribers: dict[str, list[Subscriber]] = {}
        for row in rows:
            subscribers.setdefault(row.username, []).append(row)
        entries = []
        for account_id in sorted(held.keys() | subscribers.keys()):  # code point order: UTF-8's byte order
            record = held.get(account_id)
            rows_held = _rows(subscribers.get(account_id, []))
            digest = self._held_digest(record, rows_held) if record else self._digest(account_id, rows_held)
            messaging = record.messaging_enabled if record else False
            entries.append(CmmsEntry(account_id=account_id, digest=digest, messaging=messaging))
        return CmmsEntryPage(entries=entries, next_after=next_after)

    @activity.defn(name="repair_accounts")
    async def repair_accounts(self, request: RepairInput) -> RepairResult:
        """Have each account's own workflow push billing's current state (so the repair queues behind,
        and never overtakes, a change being made meanwhile), `RECONCILE_WINDOW` at a time, and wait until
        the CMMS holds it. Heartbeats the accounts done, so a retry carries on where it was."""
        if self._lister is not None and self._source is not None:
            return await self._repair_listed(self._lister, self._source, request.account_ids)
        await sync_accounts(self._sessions, self._client, self._task_queue, request.account_ids, self._settings.window)
        async with snapshot(self._sessions) as session:
            refused = await session.exec(
                select(Account.account_id).where(
                    col(Account.account_id).in_(request.account_ids),
                    col(Account.provisioning_state) == PushStatus.failed.value,
                )
            )
            failed = len(list(refused))
        return RepairResult(repaired=len(request.account_ids) - failed, failed=failed)

    async def _repair_listed(self, lister: AccountLister, source: BillingSource, cmms_ids: list[str]) -> RepairResult:
        """Beside PortaBilling the ids compared are the CMMS's keys: each is pushed by the workflow of the
        account PortaBilling holds under it now (one that has gone since is left to its own events)."""
        try:
            found = await asyncio.gather(*(lister.account_key_of(i) for i in cmms_ids))
            keys = [key for key in found if key is not None]
            await sync_accounts(self._sessions, self._client, self._task_queue, keys, self._settings.window)
            failed = await source.failed_among(keys)
        except BillingUnavailable as err:
            raise ApplicationError(str(err), type=type(err).__name__) from err
        return RepairResult(repaired=len(keys) - failed, failed=failed)

    @activity.defn(name="remove_orphans")
    async def remove_orphans(self, request: RepairInput) -> OrphansResult:
        """Delete CMMS records (and SIP registrar rows) that have no live account, billing being asked
        again just before each delete: a record whose account appeared since its page was read (an order)
        is left alone."""
        window = asyncio.Semaphore(self._settings.window)

        async def remove(account_id: str) -> bool | None:
            """True: removed (or already gone); False: the CMMS refused; None: not an orphan after all."""
            async with window:
                if await self._has_account(account_id):
                    return None
                removed = True
                try:
                    await self._cmms.delete_account(account_id)
                except CmmsRejected as err:
                    activity.logger.warning("CMMS refused to remove the orphaned record of %s: %s", account_id, err)
                    removed = False
                if self._registrar is not None:
                    # Right after billing was asked, as the CMMS's record: an account created meanwhile
                    # has the shortest time to lose its row in (the next run puts it back).
                    await self._registrar.remove([account_id])
            return removed

        with heartbeating():
            outcomes = await asyncio.gather(*(remove(a) for a in request.account_ids), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, CmmsUnavailable):
                raise _retry(outcome) from None  # deleting is idempotent: the retry does the batch again
            if isinstance(outcome, RegistrarUnavailable):
                activity.logger.warning("%s, retrying", outcome)
                raise _registrar_retry(outcome) from None  # idempotent too
            if isinstance(outcome, BaseException):
                raise outcome
        return OrphansResult(
            removed=outcomes.count(True), not_orphaned=outcomes.count(None), failed=outcomes.count(False)
        )

    @activity.defn(name="record_orphans")
    async def record_orphans(self, request: OrphansInput) -> None:
        """Keep orphans the run found in billing's database until it deletes them (or, held, until an
        operator confirms): a wiped billing makes every CMMS record one, too many for a history.
        Repeatable: the ones already kept are kept once."""
        if not request.account_ids:
            return
        async with transaction(self._sessions) as session:
            mine = col(ReconciliationOrphan.run_id) == request.run_id
            await session.exec(
                delete(ReconciliationOrphan).where(mine, col(ReconciliationOrphan.account_id).in_(request.account_ids))
            )
            session.add_all(ReconciliationOrphan(run_id=request.run_id, account_id=a) for a in request.account_ids)

    @activity.defn(name="read_orphans")
    async def read_orphans(self, request: OrphanPageInput) -> OrphanPage:
        """A page of the run's kept orphans after `request.after`, by account id."""
        async with snapshot(self._sessions) as session:
            dialect = (await session.connection()).dialect.name
            key = _by_bytes(ReconciliationOrphan.__table__.c.account_id, dialect)  # type: ignore[attr-defined]
            query = select(ReconciliationOrphan.account_id).where(col(ReconciliationOrphan.run_id) == request.run_id)
            if request.after is not None:
                query = query.where(key > request.after)
            ids = list(await session.exec(query.order_by(key).limit(request.limit)))
        return OrphanPage(account_ids=ids, next_after=ids[-1] if len(ids) == request.limit else None)

    @activity.defn(name="hold_orphans")
    async def hold_orphans(self, request: HoldInput) -> None:
        """Keep the run's orphans for a confirmation; an earlier held run's are forgotten (this run found
        what is orphaned now, and only the newest held run can be confirmed). `held` False: the run was
        confirmed, and its orphans, being deleted, are no longer a held run's to forget."""
        async with transaction(self._sessions) as session:
            table = ReconciliationOrphan
            mine = col(table.run_id) == request.run_id
            await session.exec(update(table).where(mine).values(held=request.held))
            if request.held:
                await session.exec(delete(table).where(col(table.held), col(table.run_id) != request.run_id))

    @activity.defn(name="forget_orphans")
    async def forget_orphans(self, request: ForgetInput) -> None:
        """Forget the run's orphans (it is done with them), and any kept since before `stale_before`."""
        async with transaction(self._sessions) as session:
            table = ReconciliationOrphan
            await session.exec(delete(table).where(col(table.run_id) == request.run_id))
            await session.exec(delete(table).where(col(table.recorded_at) < request.stale_before))

    async def _has_account(self, account_id: str) -> bool:
        """Whether billing has the account, pending or live (a terminated one has left the CMMS)."""
        if self._lister is not None:
            return await self._lister.account_key_of(account_id) is not None
        async with snapshot(self._sessions) as session:
            account = await session.get(Account, account_id)
        return account is not None and account.status in COMPARED

    def _desired_digest(self, account_id: str, record: CmmsAccount) -> str:
        password = record.password.get_secret_value()
        secret = password_digest(account_id, password)
        fields: list[_Field] = [account_id, secret, record.imei, record.profile, record.domain, record.blocked]
        if self._registrar is not None:
            # The row the account's push writes: none while blocked, or without a password.
            rows = [] if record.blocked or not password else [_row(account_id, record.domain, password)]
            fields.append(rows)
        return self._digest(*fields)

    def _held_digest(self, record: CmmsRecord, rows: list[list[str]] | None = None) -> str:
        fields: list[_Field] = [
            record.account_id,
            record.password_digest,
            record.imei,
            record.profile,
            record.domain,
            record.blocked,
        ]
        if rows is not None:
            fields.append(rows)
        return self._digest(*fields)

    def _digest(self, *fields: "_Field") -> str:
        material = json.dumps(fields, separators=(",", ":")).encode()
        return hmac.new(self._key, material, hashlib.sha256).hexdigest()[:32]


def _row(username: str, domain: str, password: str) -> list[str]:
    """A subscriber row as billing says it should be: its domain and digests, computed here."""
    return [domain, ha1(username, domain, password), ha1b(username, domain, password)]


def _rows(rows: list[Subscriber]) -> list[list[str]]:
    return sorted([row.domain, row.ha1, row.ha1b] for row in rows)


def _account_id_by_bytes(dialect: str) -> ColumnElement[str]:
    """The account id, ordered and compared by byte value, as the CMMS orders its records."""
    return _by_bytes(Account.__table__.c.account_id, dialect)  # type: ignore[attr-defined]


def _by_bytes(column: ColumnElement[str], dialect: str) -> ColumnElement[str]:
    return column.collate("C") if dialect == "postgresql" else column


def _registrar_retry(err: RegistrarUnavailable) -> ApplicationError:
    """Retried like an unavailable CMMS; benign, so the SDK logs no traceback besides our line a try."""
    return ApplicationError(str(err), type=type(err).__name__, category=ApplicationErrorCategory.BENIGN)


def _retry(err: CmmsUnavailable) -> ApplicationError:
    delay = min(timedelta(seconds=err.retry_after), CMMS_MAX_RETRY_INTERVAL) if err.retry_after else None
    return ApplicationError(str(err), type="CmmsUnavailable", next_retry_delay=delay)
