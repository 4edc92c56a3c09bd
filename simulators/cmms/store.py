"""The simulator's persisted state: CMMS accounts and the SMS outbox, in one SQLite file.

One connection, guarded by a lock: uvicorn runs sync endpoints in a thread pool, and a
read-compare-write upsert must be atomic. WAL keeps readers of the file (ops, tests) from
blocking the writer.
"""

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel

from contracts.cmms import CmmsAccount, CmmsRecord, password_digest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account_id        TEXT PRIMARY KEY,
    password          TEXT NOT NULL,
    imei              TEXT UNIQUE,
    profile           TEXT NOT NULL,
    domain            TEXT NOT NULL,
    messaging_enabled INTEGER NOT NULL,
    blocked           INTEGER NOT NULL,
    version           INTEGER NOT NULL,
    updated_at        TEXT
);
CREATE TABLE IF NOT EXISTS sms_outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient     TEXT NOT NULL,
    recipient_key TEXT NOT NULL,
    text          TEXT NOT NULL,
    sent_at       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sms_outbox_by_recipient ON sms_outbox (recipient_key, id);
"""

# Literal queries (no string building), so nothing user-supplied can ever reach the SQL text.
_SELECT_BY_ID = "SELECT * FROM accounts WHERE account_id = ?"
_SELECT_BY_IMEI = "SELECT * FROM accounts WHERE imei = ?"
_SELECT_PAGE = "SELECT * FROM accounts WHERE account_id > ? ORDER BY account_id LIMIT ?"
# An upsert rather than INSERT OR REPLACE: REPLACE would silently delete a row holding the same IMEI.
_UPSERT = """
INSERT INTO accounts (account_id, password, imei, profile, domain, messaging_enabled, blocked, version, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (account_id) DO UPDATE SET
    password = excluded.password, imei = excluded.imei, profile = excluded.profile,
    domain = excluded.domain, messaging_enabled = excluded.messaging_enabled,
    blocked = excluded.blocked, version = excluded.version, updated_at = excluded.updated_at
"""


class UpsertOutcome(StrEnum):
    """What an upsert did."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class ImeiConflict(Exception):
    """The IMEI is already assigned to another account."""


@dataclass(frozen=True)
class StoredAccount:
    """An account as stored, password included (only the device side may see it)."""

    account_id: str
    password: str
    imei: str | None
    profile: str
    domain: str
    messaging_enabled: bool
    blocked: bool
    version: int
    updated_at: datetime | None = field(default=None, compare=False)  # when the version last rose

    def record(self) -> CmmsRecord:
        """The public view, without the password."""
        return CmmsRecord(
            account_id=self.account_id,
            imei=self.imei,
            profile=self.profile,
            domain=self.domain,
            messaging_enabled=self.messaging_enabled,
            blocked=self.blocked,
            version=self.version,
            updated_at=self.updated_at,
            password_digest=password_digest(self.account_id, self.password),
        )


class SmsMessage(BaseModel):
    """One message accepted by the SMS gateway."""

    to: str
    text: str
    sent_at: datetime


def recipient_key(number: str) -> str:
    """The matching key of a phone number: the `+` and formatting are optional on both sides.

    A `+` sent unencoded in a query string arrives as a space, hence the strip.
    """
    return "".join(ch for ch in number.strip() if ch not in "+ -().")


def _to_account(row: sqlite3.Row) -> StoredAccount:
    return StoredAccount(
        account_id=row["account_id"],
        password=row["password"],
        imei=row["imei"],
        profile=row["profile"],
        domain=row["domain"],
        messaging_enabled=bool(row["messaging_enabled"]),
        blocked=bool(row["blocked"]),
        version=row["version"],
        updated_at=datetime.fromisoformat(row["updated_at"]) if row["updated_at"] else None,
    )


class Store:
    """Thread-safe access to the simulator's SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Autocommit mode, with explicit transactions below: the lock already serialises access.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        columns = {row["name"] for row in self._conn.execute("PRAGMA table_info(accounts)")}
        if "updated_at" not in columns:  # a state file from before the column
            self._conn.execute("ALTER TABLE accounts ADD COLUMN updated_at TEXT")

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed on close)."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # --- accounts ---

    def upsert_account(self, account_id: str, account: CmmsAccount) -> tuple[StoredAccount, UpsertOutcome]:
        """Create or update an account; an identical request changes nothing, not even the version."""
        with self._transaction() as conn:
            current = self._get(conn, account_id)
            if account.imei is not None:
                holder = conn.execute(
                    "SELECT account_id FROM accounts WHERE imei = ? AND account_id != ?",
                    (account.imei, account_id),
                ).fetchone()
                if holder is not None:
                    raise ImeiConflict(f"IMEI {account.imei} is already assigned to another account")
            if account.messaging_enabled is not None:
                messaging = account.messaging_enabled
            else:
                messaging = current.messaging_enabled if current else True
            wanted = StoredAccount(
                account_id=account_id,
                password=account.password.get_secret_value(),
                imei=account.imei,
                profile=account.profile,
                domain=account.domain,
                messaging_enabled=messaging,
                blocked=account.blocked,
                version=current.version if current else 1,
            )
            if current == wanted:
                return current, UpsertOutcome.UNCHANGED
            version = current.version + 1 if current else 1
            wanted = replace(wanted, version=version, updated_at=datetime.now(UTC))
            self._write(conn, wanted)
            return wanted, UpsertOutcome.CREATED if current is None else UpsertOutcome.UPDATED

    def get_account(self, account_id: str) -> StoredAccount | None:
        """The account, or None."""
        with self._lock:
            return self._get(self._conn, account_id)

    def find_by_imei(self, imei: str) -> StoredAccount | None:
        """The account holding this IMEI, or None."""
        with self._lock:
            row = self._conn.execute(_SELECT_BY_IMEI, (imei,)).fetchone()
        return _to_account(row) if row else None

    def page_accounts(self, after: str | None, limit: int) -> tuple[list[StoredAccount], str | None]:
        """Up to `limit` accounts with an id above `after`, by account ID, and the `after` of the next page."""
        with self._lock:
            rows = self._conn.execute(_SELECT_PAGE, (after or "", limit + 1)).fetchall()
        accounts = [_to_account(row) for row in rows[:limit]]
        return accounts, accounts[-1].account_id if len(rows) > limit else None

    def put_raw(self, account: StoredAccount) -> None:
        """Store exactly this record, version included (the control API's CMMS-side mistakes)."""
        try:
            with self._transaction() as conn:
                self._write(conn, account)
        except sqlite3.IntegrityError:  # the only constraint a full record can break: the IMEI's
            raise ImeiConflict(f"IMEI {account.imei} is already assigned to another account") from None

    def delete_account(self, account_id: str) -> bool:
        """Delete the account; False when there was none."""
        with self._transaction() as conn:
            return conn.execute("DELETE FROM accounts WHERE account_id = ?", (account_id,)).rowcount > 0

    @staticmethod
    def _write(conn: sqlite3.Connection, account: StoredAccount) -> None:
        conn.execute(
            _UPSERT,
            (
                account.account_id,
                account.password,
                account.imei,
                account.profile,
                account.domain,
                int(account.messaging_enabled),
                int(account.blocked),
                account.version,
                account.updated_at.isoformat() if account.updated_at else None,
            ),
        )

    @staticmethod
    def _get(conn: sqlite3.Connection, account_id: str) -> StoredAccount | None:
        row = conn.execute(_SELECT_BY_ID, (account_id,)).fetchone()
        return _to_account(row) if row else None

    # --- SMS outbox ---

    def add_sms(self, to: str, text: str) -> SmsMessage:
        """Keep one accepted message."""
        message = SmsMessage(to=to, text=text, sent_at=datetime.now(UTC))
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO sms_outbox (recipient, recipient_key, text, sent_at) VALUES (?, ?, ?, ?)",
                (to, recipient_key(to), text, message.sent_at.isoformat()),
            )
        return message

    def outbox(self, to: str | None = None) -> list[SmsMessage]:
        """The messages sent to `to` (all when None), newest last."""
        with self._lock:
            if to is None:
                rows = self._conn.execute("SELECT * FROM sms_outbox ORDER BY id").fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT * FROM sms_outbox WHERE recipient_key = ? ORDER BY id", (recipient_key(to),)
                ).fetchall()
        return [
            SmsMessage(to=row["recipient"], text=row["text"], sent_at=datetime.fromisoformat(row["sent_at"]))
            for row in rows
        ]
