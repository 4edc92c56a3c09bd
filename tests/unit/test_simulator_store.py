"""The CMMS simulator's store, on its state file: a file written before `updated_at` existed is upgraded in place."""

import sqlite3
from pathlib import Path

from pydantic import SecretStr

from contracts.cmms import CmmsAccount
from simulators.cmms.store import Store


def test_a_state_file_from_before_updated_at_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE accounts (account_id TEXT PRIMARY KEY, password TEXT NOT NULL, imei TEXT UNIQUE,"
            " profile TEXT NOT NULL, domain TEXT NOT NULL, messaging_enabled INTEGER NOT NULL,"
            " blocked INTEGER NOT NULL, version INTEGER NOT NULL)"
        )
        old.execute("INSERT INTO accounts VALUES ('kept', 'pw-123456789', NULL, 'Business', 'a.example', 1, 0, 3)")
    store = Store(path)
    try:
        kept = store.get_account("kept")
        assert kept is not None and kept.version == 3 and kept.updated_at is None
        body = CmmsAccount(password=SecretStr("pw-123456789"), imei=None, profile="Business", domain="b.example")
        changed, _ = store.upsert_account("kept", body)
        assert changed.version == 4 and changed.updated_at is not None
        assert store.get_account("kept") == changed
    finally:
        store.close()
