"""Small database helpers the routers share: insert-or-409, load-or-404."""

from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from api.problems import Problem

Row = TypeVar("Row", bound=SQLModel)


async def insert(session: AsyncSession, row: Row, what: str, key: str) -> Row:
    """Insert and commit `row`; a duplicate key answers 409 and changes nothing."""
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Problem(409, f"{what} {key!r} already exists") from None
    return row


async def get_or_404(session: AsyncSession, model: type[Row], key: str, what: str) -> Row:
    row = await session.get(model, key)
    if row is None:
        raise Problem(404, f"{what} {key!r} does not exist")
    return row


def unknown_reference(field: str, what: str, key: str) -> Problem:
    """A 422 for a body field naming something that does not exist."""
    return Problem(
        422,
        f"{what} {key!r} does not exist",
        title="Validation failed",
        errors=[{"field": field, "message": f"unknown {what}", "type": "unknown_reference"}],
    )
