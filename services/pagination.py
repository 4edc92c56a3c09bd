"""Keyset pagination, the one way every list is paged: rows in a stable order, `(created_at, key)`,
and an opaque cursor that says where the previous page stopped.

A keyset cursor (not an offset) stays right while rows are added: a page starts strictly after the
last row the caller saw, so no row is skipped or shown twice, and each page costs the same however
deep it is. The cursor names its list, so one list's cursor is refused by another.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Integer, literal, tuple_
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from services.errors import Invalid

MAX_LIMIT = 500
DEFAULT_LIMIT = 50

Row = TypeVar("Row", bound=SQLModel)
Item = TypeVar("Item")


@dataclass(frozen=True)
class PageRequest:
    """How many rows, after which (the `next` of the previous page; None: from the first), and which
    way: oldest first (`asc`) or newest first (`desc`)."""

    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    order: Literal["asc", "desc"] = "asc"

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise Invalid(
                f"limit must be between 1 and {MAX_LIMIT}",
                [{"field": "limit", "message": f"between 1 and {MAX_LIMIT}", "type": "limit"}],
            )


@dataclass(frozen=True)
class KeysetPage(Generic[Item]):
    """What a service hands the API for one page; the API answers it as `api.pagination.Page`."""

    items: list[Item]
    next: str | None  # the cursor of the following page; None on the last


async def page(
    session: AsyncSession, query: SelectOfScalar[Row], model: type[Row], key: str, listing: str, request: PageRequest
) -> KeysetPage[Row]:
    """One page of `query`'s rows of `model`, ordered by (created_at, `key`) either way."""
    created, ident = getattr(model, "created_at"), getattr(model, key)  # noqa: B009  (columns, by name)
    listing = f"{listing}:{request.order}"  # a cursor continues in the direction it was made for
    if request.cursor is not None:
        after_created, after_key = _decode(request.cursor, listing)
        if not isinstance(after_key, int if isinstance(ident.type, Integer) else str):  # made by hand
            raise _bad_cursor()
        # A row-value comparison: both databases seek the (created_at, key) index to it (an OR of the
        # two columns' conditions scans the index from its start instead).
        position = tuple_(created, ident)
        after = tuple_(literal(after_created, created.type), literal(after_key, ident.type))  # bound as the columns
        query = query.where(position > after if request.order == "asc" else position < after)
    ordering = (created, ident) if request.order == "asc" else (created.desc(), ident.desc())
    rows = list((await session.exec(query.order_by(*ordering).limit(request.limit + 1))).all())
    if len(rows) <= request.limit:
        return KeysetPage(rows, None)
    rows = rows[: request.limit]
    last = rows[-1]
    return KeysetPage(rows, _encode(listing, getattr(last, "created_at"), getattr(last, key)))  # noqa: B009


def _encode(listing: str, created: datetime, key: Any) -> str:
    text = json.dumps([listing, created.isoformat(), key], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str, listing: str) -> tuple[datetime, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        name, created, key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(created)
    except (ValueError, TypeError, binascii.Error):
        raise _bad_cursor() from None
    if name != listing or when.tzinfo is None or not isinstance(key, str | int):
        raise _bad_cursor()
    return when, key


def _bad_cursor() -> Invalid:
    message = "not a cursor of this list: pass the `next` of the previous page as it was"
    return Invalid("the cursor is not valid", [{"field": "cursor", "message": message, "type": "cursor"}])
