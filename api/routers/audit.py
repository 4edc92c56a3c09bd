"""The audit trail: every edit of an object, with who made it and when."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api.auth import Role
from api.deps import OutboxDep, require
from api.pagination import Page, PageDep
from services import audit

router = APIRouter(prefix="/v1/audit", tags=["audit"], dependencies=[Depends(require(Role.admin))])


_TYPES = sorted(audit.OBJECT_TYPES)
_OBJECT = f"^({'|'.join(_TYPES)}):[^\\x00]+$"


class AuditEntryPublic(BaseModel):
    object_type: str
    object_id: str
    action: str
    actor: str  # the API key's label (`key<n>:<roles>`), never the key
    changes: dict[str, Any]
    created_at: datetime


@router.get("")
async def audit_trail(
    outbox: OutboxDep,
    page: PageDep,
    object: Annotated[
        str,
        Query(
            max_length=100,
            pattern=_OBJECT,
            description="`<type>:<id>`, type one of " + ", ".join(_TYPES),
            examples=["customer:alice"],
        ),
    ],
) -> Page[AuditEntryPublic]:
    """The object's edits, oldest first."""
    object_type, _, object_id = object.partition(":")
    found = await audit.trail(outbox, object_type, object_id, page)
    items = [AuditEntryPublic.model_validate(row, from_attributes=True) for row in found.items]
    return Page(items=items, next=found.next)
