"""Signups as support finds them: by the caller's number and by state (the signup flow itself is the
signups router's and its workflow's)."""

from dataclasses import dataclass

from sqlmodel import select

from billing.db import snapshot
from billing.models import Signup
from contracts.signups import SignupState
from services.accounts import phone_number
from services.outbox import Outbox
from services.pagination import KeysetPage, PageRequest, page


@dataclass(frozen=True)
class SignupFilter:
    phone_number: str | None = None  # any international format
    status: SignupState | None = None


async def list_signups(outbox: Outbox, where: SignupFilter, request: PageRequest) -> KeysetPage[Signup]:
    """Signups oldest first."""
    query = select(Signup)
    if where.phone_number is not None:
        query = query.where(Signup.phone_number == phone_number(where.phone_number))
    if where.status is not None:
        query = query.where(Signup.status == where.status)
    async with snapshot(outbox.sessions) as session:
        return await page(session, query, Signup, "signup_id", "signups", request)
