"""The audit trail: every edit an operator makes, written in the edit's own transaction (so an edit is
never stored without its entry, nor an entry without its edit), readable per object.

An entry names the object, the action, the caller's key label and the time, and what changed as
`{field: {"from": old, "to": new}}`. A secret (a SIP password) is recorded as changed, never by value.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.db import snapshot
from billing.models import AuditEntry
from services.outbox import Outbox
from services.pagination import KeysetPage, PageRequest, page

SECRET = "(changed)"
OBJECT_TYPES = frozenset({"customer", "customer_class", "reseller", "product", "account"})


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The fields whose values differ, as {"from", "to"} pairs (a field missing on one side is None)."""
    return {
        name: {"from": before.get(name), "to": after.get(name)}
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def created(values: Mapping[str, Any]) -> dict[str, Any]:
    """A new object's values, as changes from nothing."""
    return diff({}, {name: value for name, value in values.items() if value is not None})


def record(
    session: AsyncSession,
    actor: str,
    object_type: str,
    object_id: str,
    action: str,
    changes: Mapping[str, Any],
    secrets: Iterable[str] = (),
) -> None:
    """Add the entry to the edit's transaction; `secrets` are fields changed whose values are never kept."""
    entry = dict(changes) | {name: SECRET for name in secrets}
    session.add(AuditEntry(object_type=object_type, object_id=object_id, action=action, actor=actor, changes=entry))


async def trail(outbox: Outbox, object_type: str, object_id: str, request: PageRequest) -> KeysetPage[AuditEntry]:
    """The object's entries, oldest first."""
    query = select(AuditEntry).where(col(AuditEntry.object_type) == object_type, col(AuditEntry.object_id) == object_id)
    async with snapshot(outbox.sessions) as session:
        return await page(session, query, AuditEntry, "id", f"audit:{object_type}:{object_id}", request)
