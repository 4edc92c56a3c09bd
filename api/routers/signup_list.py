"""The list of signups, for support (admin) and the CMMS: by number and by state."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api.auth import Role
from api.deps import CallerDep, OutboxDep, require
from api.fields import MobileNumber
from api.pagination import Page, PageDep
from contracts.signups import SignupState
from services import signup_list

router = APIRouter(prefix="/v1/signups", tags=["signups"], dependencies=[Depends(require(Role.cmms))])


class SignupListed(BaseModel):
    """A signup in a list: never its code; its number for support (admin) only, as the CMMS's own view
    of a signup carries none."""

    signup_id: str
    phone_number: str | None
    status: SignupState
    account_id: str | None
    expires_at: datetime
    created_at: datetime
    updated_at: datetime


@router.get("")
async def list_signups(
    outbox: OutboxDep,
    caller: CallerDep,
    page: PageDep,
    phone_number: Annotated[MobileNumber | None, Query(description="In any international format")] = None,
    status: SignupState | None = None,
) -> Page[SignupListed]:
    """Signups oldest first, by the number that signed up and by state."""
    found = await signup_list.list_signups(outbox, signup_list.SignupFilter(phone_number, status), page)
    items = [SignupListed.model_validate(row, from_attributes=True) for row in found.items]
    if not caller.may(Role.admin):
        items = [item.model_copy(update={"phone_number": None}) for item in items]
    return Page(items=items, next=found.next)
