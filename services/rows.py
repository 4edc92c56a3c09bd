"""Small row helpers the services share: add-or-conflict, load-or-not-found."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.db import SessionMaker, snapshot, transaction
from services.errors import Conflict, NotFound

Row = TypeVar("Row", bound=SQLModel)


@asynccontextmanager
async def adding(sessions: SessionMaker, what: str, key: str) -> AsyncIterator[AsyncSession]:
    """A transaction that adds `what` `key`: a duplicate key is a conflict, and nothing is changed."""
    try:
        async with transaction(sessions) as session:
            yield session
    except IntegrityError:
        raise Conflict(f"{what} {key!r} already exists") from None


async def get(session: AsyncSession, model: type[Row], key: str, what: str) -> Row:
    row = await session.get(model, key)
    if row is None:
        raise NotFound(f"{what} {key!r} does not exist")
    return row


async def read(sessions: SessionMaker, model: type[Row], key: str, what: str) -> Row:
    """One row by key, read from a snapshot (never waits for a writer)."""
    async with snapshot(sessions) as session:
        return await get(session, model, key, what)
