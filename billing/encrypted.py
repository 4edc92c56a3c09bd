"""Secrets encrypted at rest: a column type that stores AES-GCM ciphertext and reads back plaintext.

Code keeps reading and writing `account.sip_password` as a plain string; the database holds
`v2:<kid>:<base64url(nonce + ciphertext + tag)>`. The associated data binds in the column's name and
the row's primary key, so a value copied into another encrypted column, or moved to another row (a
database writer swapping two accounts' passwords), does not decrypt there.

How the row is known on each side, since a column type alone sees only the value:
- reading, the column is selected as `<primary key> || ':' || <stored value>` (`column_expression`, in
  every SELECT that names the column, ORM loads and subqueries included), so the row comes with it;
- writing, the model's row is bound to the value before the flush (`_bind_rows`, on every insert and
  update through the models), and a value without its row is refused.

`v1` (the column's name alone as associated data) is what this module wrote before: migration
0012_row_bound_secrets rewrote it, reading refuses it, and `reseal` (the key rotation's) still turns any
left into `v2`.

The keys come from `DATABASE_ENCRYPTION_KEYS` (see `core.crypto` for the format and rotation): each
process's entry point hands them over once at start-up (`use_key_ring`), before any row is read or written.
`python -m billing.rotate_keys` re-encrypts every stored value under the newest key.
"""

import base64
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Dialect, String, Table, TypeDecorator, event, inspect, literal, type_coerce
from sqlalchemy.orm import Mapper

from core.crypto import KeyRing

PREFIX = "v2"
LEGACY_PREFIX = "v1"  # the column's name alone as associated data

# The process's key ring: a column type is made at import time, long before the settings are read.
_keys: KeyRing | None = None


def use_key_ring(keys: KeyRing) -> None:
    """Encrypt and decrypt with `keys` from now on, in the whole process (its entry point calls this
    once, beside the engine's set-up; tests, with the key ring of their settings)."""
    global _keys
    _keys = keys


def database_keys() -> KeyRing:
    """The key ring the entry point handed over."""
    if _keys is None:
        raise RuntimeError("no key ring for the encrypted columns: the entry point calls use_key_ring first")
    return _keys


def ciphertext_length(plaintext_length: int, kid_length: int = 32) -> int:
    """The longest stored text for a plaintext of this many bytes: sizes the column."""
    sealed = 12 + plaintext_length + 16
    return len(PREFIX) + 1 + kid_length + 1 + 4 * ((sealed + 2) // 3)


class RowBound(str):
    """A plaintext on its way to an encrypted column, with the primary key of the row it is written to."""

    row: str

    def __new__(cls, value: str, row: str) -> "RowBound":
        bound = super().__new__(cls, value)
        bound.row = row
        return bound


def associated_data(purpose: str, row: str) -> bytes:
    """What a stored value is bound to: its column (`purpose`) and its row's primary key (unambiguous
    whatever either holds)."""
    return json.dumps([purpose, row], separators=(",", ":")).encode()


def seal(plaintext: str, purpose: str, row: str) -> str:
    """The stored text of `plaintext` in column `purpose` of row `row`, under the current key."""
    kid, sealed = database_keys().encrypt(plaintext.encode(), associated_data(purpose, row))
    return f"{PREFIX}:{kid}:{base64.urlsafe_b64encode(sealed).decode()}"


def unseal(stored: str, purpose: str, row: str, *, legacy: bool = False) -> str:
    """The plaintext of a stored text read from column `purpose` of row `row` (a `v1` text only when
    `legacy`: it carries no row, so a reader must not take it)."""
    prefix, kid, text = stored.split(":", 2)
    if prefix == PREFIX:
        data = associated_data(purpose, row)
    elif prefix == LEGACY_PREFIX and legacy:
        data = purpose.encode()
    else:
        raise ValueError(f"unknown encrypted-column format {prefix!r}")
    return database_keys().decrypt(kid, base64.urlsafe_b64decode(text), data).decode()


def key_id(stored: str) -> str:
    """The id of the key a stored text is under (`v1` texts included)."""
    return stored.split(":", 2)[1]


def reseal(stored: str, purpose: str, row: str) -> str | None:
    """The stored text again under the current key, bound to its row; None when it already is."""
    if stored.startswith(f"{PREFIX}:{database_keys().current_kid}:"):
        return None
    return seal(unseal(stored, purpose, row, legacy=True), purpose, row)


class EncryptedString(TypeDecorator[str]):
    """A string stored encrypted; `purpose` (e.g. "account.sip_password") and the row's primary key are
    the associated data. Its table has a one-column primary key."""

    impl = String
    cache_ok = True

    def __init__(self, purpose: str, max_plaintext: int) -> None:
        super().__init__(length=ciphertext_length(max_plaintext))
        self.purpose = purpose
        self.max_plaintext = max_plaintext

    def column_expression(self, colexpr: ColumnElement[Any]) -> ColumnElement[Any]:
        # Selected with its row's key in front: `<key>:v2:<kid>:<ciphertext>` (NULL stays NULL).
        [key] = primary_key(colexpr.table)
        prefixed = type_coerce(key, String()).concat(literal(":")).concat(type_coerce(colexpr, String()))
        return type_coerce(prefixed, self)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, RowBound):
            raise ValueError(f"{self.purpose} is written through its model, which binds the row in")
        return seal(value, self.purpose, value.row)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        # The key is in front; the stored text after it has three parts and no `:` in its last two.
        row, prefix, kid, text = value.rsplit(":", 3)
        return unseal(f"{prefix}:{kid}:{text}", self.purpose, row)


def primary_key(table: Any) -> list[ColumnElement[Any]]:
    """The primary-key columns of a table, or of a subquery or alias of one."""
    key = table.primary_key
    return list(getattr(key, "columns", key))


def encrypted_columns(table: Table) -> dict[str, EncryptedString]:
    """The table's encrypted columns by name."""
    return {column.name: column.type for column in table.columns if isinstance(column.type, EncryptedString)}


def bind_rows(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` of a row of `table` (by column name) with each encrypted column's value bound to the row:
    for a Core insert, which the models' flush events do not see. A table without one is left as it is."""
    encrypted = encrypted_columns(table)
    if not encrypted:
        return dict(values)
    [key] = primary_key(table)
    row = str(values[key.name])
    bound = dict(values)
    for name in encrypted:
        if isinstance(bound.get(name), str):
            bound[name] = RowBound(bound[name], row)
    return bound


def _bind_rows(mapper: Mapper[Any], _connection: Any, target: Any) -> None:
    """Before a model's row is inserted or updated: bind each changed encrypted value to the row."""
    table = mapper.local_table
    if not isinstance(table, Table):
        return
    columns = encrypted_columns(table)
    if not columns:
        return
    [key] = primary_key(table)
    state = inspect(target)
    row = str(getattr(target, mapper.get_property_by_column(key).key))
    for name in columns:
        attribute = mapper.get_property_by_column(table.columns[name]).key
        value = getattr(target, attribute)
        bound = isinstance(value, RowBound) and value.row == row
        if isinstance(value, str) and not bound and state.attrs[attribute].history.has_changes():
            setattr(target, attribute, RowBound(value, row))


event.listen(Mapper, "before_insert", _bind_rows)
event.listen(Mapper, "before_update", _bind_rows)
