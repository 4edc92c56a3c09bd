"""Bulk import of an existing subscriber base: a file of rows, each an account to create in billing and
provision (or, `in_cmms`, adopt) in the CMMS.

Every row is checked first, as an order's account is (the account id's format, an existing customer and
product, the IMEI's format and that no live account or open order holds it) and against the other rows
(an account id or IMEI on two lines). A row that fails is rejected with its line and reason; the rows
that pass are written in one transaction, with the outbox record that starts the import's workflow, so a
row is either wholly in billing or not at all, and a stored import is always started.

The import's id is a keyed hash of the file: the same file again finds the stored import and answers
what it answered the first time, and changes nothing. The file's passwords go to the accounts only
(encrypted at rest); no reason, id or workflow input carries one.

The command-line form imports a file from disk through the same service (a file beyond the API's
`IMPORT_MAX_BODY_BYTES`, say): `python -m services.imports FILE` (the format from the file's name:
`.csv` is CSV, anything else NDJSON; `--csv` or `--ndjson` to say it).
"""

import argparse
import asyncio
import csv
import hmac
import io
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr
from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from billing.credentials import new_sip_password
from billing.db import make_sessionmaker, open_billing, snapshot
from billing.encrypted import bind_rows
from billing.formats import RESOURCE_ID, SIP_PASSWORD_RULE, imei_problem, is_sip_password
from billing.messaging import initial_wallet
from billing.models import (
    Account,
    AccountStatus,
    Customer,
    Import,
    ImportRow,
    Order,
    OrderStatus,
    OutboxKind,
    Product,
    PushStatus,
    utcnow,
)
from billing.uniqueness import imei_taken
from billing.wallets import open_initial_wallet
from contracts.imports import ImportProgress, import_workflow_id
from contracts.workflows import IMPORT_PROGRESS
from core import gateway
from core.settings import Settings, get_settings
from core.temporal import connect
from services.errors import Conflict, Invalid, NotFound
from services.outbox import Outbox

NDJSON = "application/x-ndjson"
CSV = "text/csv"
MEDIA_TYPES = (NDJSON, CSV)
COLUMNS = ("account_id", "customer_id", "product_id", "imei", "password", "in_cmms")
REQUIRED = COLUMNS[:3]

_ACCOUNT_ID = re.compile(RESOURCE_ID)  # what an order's account may be called
_IDS_AT_ONCE = 500  # ids in one `IN (...)`: well below SQLite's and PostgreSQL's limits on parameters
_OPEN_ORDER = (OrderStatus.accepted, OrderStatus.provisioning)
_CSV_TRUE = {"true", "1", "yes"}
_CSV_FALSE = {"false", "0", "no", ""}
IN_CMMS_NEEDS_PASSWORD = (
    "in_cmms rows must carry the account's password: the CMMS gives back only a digest of it, "
    "and an adopted account keeps the password its phone has"
)

T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    """A row that passed the format checks (the database's come next)."""

    line: int
    account_id: str
    customer_id: str
    product_id: str
    imei: str | None
    password: str | None = field(repr=False)
    in_cmms: bool


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str  # in words, naming the field; never a password


@dataclass(frozen=True)
class ImportReport:
    """What an import answers: the same for the same file, however often it is sent."""

    import_id: str
    workflow_id: str
    total: int
    accepted: int
    rejected: list[Rejected]


class _RowError(Exception):
    """Why one row is rejected."""


# --- reading the file ---


def read_rows(body: bytes, media_type: str) -> tuple[list[Row], list[Rejected]]:
    """The file's rows that pass the format checks, and the others with their line and reason. Raises
    `Invalid` for a file that cannot be read as a whole (not UTF-8, a CSV without the columns, no rows)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("the file is not UTF-8 text") from None
    if "\x00" in text:
        raise Invalid("the file holds a NUL character")
    parsed = list(_csv_rows(text) if media_type == CSV else _ndjson_rows(text))
    if not parsed:
        raise Invalid("the file holds no rows")
    rows: list[Row] = []
    rejected: list[Rejected] = []
    for line, values in parsed:
        try:
            if isinstance(values, _RowError):
                raise values
            rows.append(_row(line, values))
        except _RowError as err:
            rejected.append(Rejected(line, str(err)))
    return rows, rejected


def _ndjson_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | _RowError]]:
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            yield line, _RowError("the line is not valid JSON")
            continue
        if not isinstance(value, dict):
            yield line, _RowError("a row is a JSON object")
            continue
        unknown = sorted(set(value) - set(COLUMNS))
        if unknown:
            yield line, _RowError(f"unknown field {unknown[0][:64]!r} (the fields are {', '.join(COLUMNS)})")
            continue
        yield line, value


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | _RowError]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    except csv.Error as err:
        raise Invalid(f"the CSV header cannot be read: {err}") from None
    missing = [name for name in REQUIRED if name not in header]
    unknown = [name for name in header if name not in COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise Invalid(
            f"the CSV header must name the columns {', '.join(COLUMNS)} (the last three optional), each once",
            [{"field": "header", "message": f"missing: {missing}, unknown: {[u[:64] for u in unknown]}"}],
        )
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise Invalid(f"the CSV cannot be read at line {reader.line_num}: {err}") from None
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            yield reader.line_num, _RowError(f"{len(cells)} fields, but the header names {len(header)}")
            continue
        values: dict[str, Any] = {name: cell.strip() for name, cell in zip(header, cells, strict=False)}
        for name in ("imei", "password"):
            if values.get(name) == "":
                values[name] = None
        in_cmms = str(values.get("in_cmms") or "").lower()
        if in_cmms not in _CSV_TRUE | _CSV_FALSE:
            yield reader.line_num, _RowError("in_cmms: true or false")
            continue
        values["in_cmms"] = in_cmms in _CSV_TRUE
        yield reader.line_num, values


def _row(line: int, values: dict[str, Any]) -> Row:
    account_id = _text(values, "account_id")
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise _RowError("account_id: 1 to 64 letters, digits and . _ : @ -, starting with a letter or digit")
    customer_id, product_id = _text(values, "customer_id"), _text(values, "product_id")
    imei = values.get("imei")
    if imei is not None:
        problem = imei_problem(imei) if isinstance(imei, str) else "an IMEI is 15 digits"
        if problem is not None:
            raise _RowError(f"imei: {problem}")
    password = values.get("password")
    if password is not None and (not isinstance(password, str) or not is_sip_password(password)):
        raise _RowError(f"password: {SIP_PASSWORD_RULE}")
    in_cmms = values.get("in_cmms", False)
    if in_cmms is None:
        in_cmms = False
    if not isinstance(in_cmms, bool):
        raise _RowError("in_cmms: true or false")
    if in_cmms and password is None:
        raise _RowError(IN_CMMS_NEEDS_PASSWORD)
    return Row(line, account_id, customer_id, product_id, imei, password, in_cmms)


def _text(values: dict[str, Any], name: str) -> str:
    value = values.get(name)
    if value is None or value == "":
        raise _RowError(f"{name} is missing")
    if not isinstance(value, str) or len(value) > 64 or "\x00" in value:
        raise _RowError(f"{name}: a string of at most 64 characters, no NUL")
    return value


def _one_line_each(rows: list[Row]) -> tuple[list[Row], list[Rejected]]:
    """Rows whose account id and IMEI are on no other line; every line of a repeated one is rejected (which
    of them was meant is not ours to guess)."""
    lines: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in rows:
        lines["account id", row.account_id].append(row.line)
        if row.imei is not None:
            lines["IMEI", row.imei].append(row.line)
    kept: list[Row] = []
    rejected: list[Rejected] = []
    for row in rows:
        keys = [("account id", row.account_id)] + ([("IMEI", row.imei)] if row.imei is not None else [])
        repeated = next((key for key in keys if len(lines[key]) > 1), None)
        if repeated is None:
            kept.append(row)
            continue
        others = ", ".join(str(n) for n in lines[repeated] if n != row.line)
        rejected.append(Rejected(row.line, f"{repeated[0]} {repeated[1]} is also on line {others}"))
    return kept, rejected


# --- the import ---


def import_id_of(secret_key: SecretStr, body: bytes, media_type: str) -> str:
    """A keyed hash of the file: the same file is the same import, and the id says nothing of its content."""
    digest = hmac.new(secret_key.get_secret_value().encode(), b"import\0" + media_type.encode() + b"\0", "sha256")
    digest.update(body)
    return digest.hexdigest()[:32]


async def submit_import(
    outbox: Outbox, secret_key: SecretStr, body: bytes, media_type: str
) -> tuple[ImportReport, bool]:
    """Import the file: the report, and whether this request stored it (False: the same file came before,
    and its report is answered unchanged)."""
    import_id = import_id_of(secret_key, body, media_type)
    stored = await _stored(outbox, import_id)
    if stored is not None:
        return stored, False
    # Reading, checking and generating passwords is CPU work (seconds for a large file): off the event loop,
    # so the API answers other requests meanwhile, and before the transaction, so that on SQLite the write
    # lock is held for the SQL alone.
    total, rows, rejected, passwords = await asyncio.to_thread(_prepare, body, media_type)
    try:
        async with outbox.transaction() as tx:
            session = tx.session
            if await session.get(Import, import_id) is not None:  # the same file, stored meanwhile
                raise _AlreadyStored
            refused = await _check_against_billing(session, rows)
            rejected += refused
            refused_lines = {r.line for r in refused}
            accepted = [row for row in rows if row.line not in refused_lines]
            rejected.sort(key=lambda r: r.line)
            report = ImportReport(import_id, import_workflow_id(import_id), total, len(accepted), rejected)
            session.add(
                Import(
                    import_id=import_id,
                    workflow_id=report.workflow_id,
                    total=total,
                    accepted=len(accepted),
                    rejected=[{"line": r.line, "reason": r.reason} for r in rejected],
                )
            )
            await session.flush()  # the import first: its rows refer to it
            await _create_accounts(session, import_id, accepted, passwords)
            tx.tell(OutboxKind.bulk_import, import_id)
    except _AlreadyStored:
        pass
    except IntegrityError as err:
        stored = await _stored(outbox, import_id)
        if stored is not None:  # the same file, sent twice at once: one of them stored it
            return stored, False
        if imei_taken(err):
            raise Conflict("an IMEI of the file was taken by another account meanwhile; send the file again") from None
        raise Conflict("an account id of the file was taken meanwhile; send the file again") from None
    else:
        return report, True
    stored = await _stored(outbox, import_id)
    assert stored is not None
    return stored, False


def _prepare(body: bytes, media_type: str) -> tuple[int, list[Row], list[Rejected], dict[int, str]]:
    """The file's row count, the rows that pass every check of their own and against each other, the
    rejected ones, and a generated password for each row without one (by line)."""
    rows, rejected = read_rows(body, media_type)
    total = len(rows) + len(rejected)
    rows, repeated = _one_line_each(rows)
    passwords = {row.line: new_sip_password() for row in rows if row.password is None}
    return total, rows, rejected + repeated, passwords


class _AlreadyStored(Exception):
    """The import was stored by another request between the first look and the transaction."""


async def _stored(outbox: Outbox, import_id: str) -> ImportReport | None:
    async with snapshot(outbox.sessions) as session:
        found = await session.get(Import, import_id)
    if found is None:
        return None
    rejected = [Rejected(int(r["line"]), str(r["reason"])) for r in found.rejected]
    return ImportReport(found.import_id, found.workflow_id, found.total, found.accepted, rejected)


async def _check_against_billing(session: AsyncSession, rows: list[Row]) -> list[Rejected]:
    """The rows billing refuses, as an order's account is refused: an unknown customer or product, an
    account id taken (or an open order's), an IMEI a live account or an open order holds."""
    customers = set(
        await _in(
            session,
            {r.customer_id for r in rows},
            lambda ids: select(Customer.customer_id).where(
                col(Customer.customer_id).in_(ids), col(Customer.deleted_at).is_(None)
            ),
        )
    )
    products = set(
        await _in(
            session,
            {r.product_id for r in rows},
            lambda ids: select(Product.product_id).where(col(Product.product_id).in_(ids)),
        )
    )
    accounts = set(
        await _in(
            session,
            {r.account_id for r in rows},
            lambda ids: select(Account.account_id).where(col(Account.account_id).in_(ids)),
        )
    )
    ordered = dict(
        await _in(
            session,
            {r.account_id for r in rows},
            lambda ids: select(Order.account_id, Order.order_id).where(
                col(Order.account_id).in_(ids), col(Order.status).in_(_OPEN_ORDER)
            ),
        )
    )
    imeis = {r.imei for r in rows if r.imei is not None}
    imei_accounts = dict(
        await _in(
            session,
            imeis,
            lambda ids: select(Account.imei, Account.account_id).where(
                col(Account.imei).in_(ids), col(Account.status) != AccountStatus.terminated
            ),
        )
    )
    imei_orders = dict(
        await _in(
            session,
            imeis,
            lambda ids: select(Order.imei, Order.order_id).where(
                col(Order.imei).in_(ids), col(Order.status).in_(_OPEN_ORDER)
            ),
        )
    )
    refused: list[Rejected] = []
    for row in rows:
        reason: str | None = None
        if row.customer_id not in customers:
            reason = f"customer {row.customer_id!r} does not exist"
        elif row.product_id not in products:
            reason = f"product {row.product_id!r} does not exist"
        elif row.account_id in accounts:
            reason = f"account {row.account_id!r} already exists"
        elif row.account_id in ordered:
            reason = f"account {row.account_id!r} is being provisioned by order {ordered[row.account_id]!r}"
        elif row.imei is not None and row.imei in imei_accounts:
            reason = f"IMEI {row.imei} already belongs to an account"
        elif row.imei is not None and row.imei in imei_orders:
            reason = f"IMEI {row.imei} is being provisioned by order {imei_orders[row.imei]!r}"
        if reason is not None:
            refused.append(Rejected(row.line, reason))
    return refused


async def _in(session: AsyncSession, keys: Iterable[str], query: Any) -> list[Any]:
    """`query(ids)`'s rows for every chunk of `keys`."""
    found: list[Any] = []
    for chunk in _chunks(sorted(keys), _IDS_AT_ONCE):
        found += list(await session.exec(query(chunk)))
    return found


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _create_accounts(session: AsyncSession, import_id: str, rows: list[Row], passwords: dict[int, str]) -> None:
    """Each row's account, live at once (billing is the system of record, and an import rolls nothing
    back: a row the CMMS refuses stays, showing why, as a refused change does), with its product's initial
    messaging wallet (as an order's gets); the password the row carries, else the one generated for it
    (`passwords`, by line). Live, a customer's rollout meanwhile includes them, through the same account
    workflows as the import. Written with one multi-row INSERT a chunk, not object by object: on SQLite
    the write lock is held while this runs."""
    origin, now = f"import:{import_id}", utcnow()
    accounts: list[dict[str, Any]] = [
        {
            "account_id": row.account_id,
            "customer_id": row.customer_id,
            "product_id": row.product_id,
            "imei": row.imei,
            "sip_password": row.password or passwords[row.line],
            "status": AccountStatus.active,
            "provisioning_state": PushStatus.in_progress,
            "service_policies": {},
            "created_by": origin,
            "revision": 1,
            "created_at": now,
            "updated_at": now,
        }
        for row in rows
    ]
    imported: list[dict[str, Any]] = [
        {"import_id": import_id, "account_id": row.account_id, "line": row.line, "in_cmms": row.in_cmms} for row in rows
    ]
    connection = await session.connection()  # Core, not the ORM's bulk path: a third of the time
    account_table: Table = Account.__table__  # type: ignore[attr-defined]
    row_table: Table = ImportRow.__table__  # type: ignore[attr-defined]
    for table, values in ((account_table, accounts), (row_table, imported)):
        for chunk in _chunks(values, _IDS_AT_ONCE):
            # Core skips the models' flush events: each encrypted value is bound to its row here.
            await connection.execute(insert(table), [bind_rows(table, values) for values in chunk])
    products = {p.product_id: p for p in await _in(session, {r.product_id for r in rows}, _products)}
    for row in rows:
        product = products[row.product_id]
        if initial_wallet(product.service_policies) is not None:
            await open_initial_wallet(session, row.account_id, product, now)


def _products(ids: Sequence[str]) -> Any:
    return select(Product).where(col(Product.product_id).in_(ids))


# --- where an import stands ---


async def import_progress(outbox: Outbox, client: Client, import_id: str) -> ImportProgress:
    """The import's counts: the file's from billing, the provisioning's from its workflow (its result once
    it completed). Raises NotFound for an import that was never stored."""
    async with snapshot(outbox.sessions) as session:
        found = await session.get(Import, import_id)
    if found is None:
        raise NotFound(f"import {import_id!r} does not exist")
    reading = await gateway.progress(client, IMPORT_PROGRESS, found.workflow_id)
    if reading is None:  # stored, its workflow not started yet (the outbox starts it as soon as it can)
        progress = ImportProgress(import_id=import_id)
    else:
        progress = reading.value
        if reading.state == "ended":
            progress.status = "failed"  # where it got to before it ended
    progress.total, progress.accepted, progress.rejected = found.total, found.accepted, len(found.rejected)
    return progress


# --- the command line ---


def media_type_of(path: Path, csv_flag: bool, ndjson_flag: bool) -> str:
    if csv_flag:
        return CSV
    if ndjson_flag:
        return NDJSON
    return CSV if path.suffix.lower() == ".csv" else NDJSON


async def import_file(settings: Settings, path: Path, media_type: str) -> tuple[ImportReport, bool]:
    """Import a file from disk through the same service as the API; its workflow is started as the API's
    are (right after the commit, else by any API process's outbox relay)."""
    body = await asyncio.to_thread(path.read_bytes)
    engine = open_billing(settings.database)
    try:
        temporal = await connect(settings.temporal, lazy=True)
        outbox = Outbox(make_sessionmaker(engine), temporal, settings.outbox, settings.temporal.task_queue)
        try:
            return await submit_import(outbox, settings.secret_key, body, media_type)
        finally:
            await outbox.close(grace_seconds=10.0)
    finally:
        await engine.dispose()


def report_json(report: ImportReport) -> dict[str, Any]:
    return {
        "import_id": report.import_id,
        "workflow_id": report.workflow_id,
        "total": report.total,
        "accepted": report.accepted,
        "rejected": [{"line": r.line, "reason": r.reason} for r in report.rejected],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.imports",
        description="Import accounts from a CSV or NDJSON file (the format of POST /v1/imports), with no size limit.",
    )
    parser.add_argument("file", type=Path)
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--csv", action="store_true", help="the file is CSV (the default for a .csv name)")
    kind.add_argument("--ndjson", action="store_true", help="the file is NDJSON (the default otherwise)")
    args = parser.parse_args(argv)
    settings = get_settings()
    if settings.billing_source != "builtin":
        print("not imported: billing is PortaBilling here (BILLING_SOURCE=portabilling)", file=sys.stderr)
        return 2
    try:
        report, created = asyncio.run(import_file(settings, args.file, media_type_of(args.file, args.csv, args.ndjson)))
    except (Invalid, Conflict) as err:
        print(f"not imported: {err.detail}", file=sys.stderr)
        return 2
    print(json.dumps(report_json(report) | {"new": created}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
