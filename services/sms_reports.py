"""Delivery reports of code SMS: what the SMS gateway (Kannel) reports on one message, recorded once
and only ever forward (billing.sms_reports has the report types and the order of statuses)."""

from billing.db import SessionMaker, snapshot, transaction
from billing.models import SmsMessage, SmsStatus, utcnow
from billing.sms_reports import REPORT_STATUS, next_status, token_hash
from services.errors import Invalid, NotFound

_TOKEN_MAX = 64


async def record_report(sessions: SessionMaker, token: str, report_type: int) -> tuple[SmsStatus, SmsStatus]:
    """Record report `report_type` (Kannel's `%d`: 1, 2, 4, 8 or 16) for the message of `token`; returns
    what was reported and the message's status after it."""
    reported = REPORT_STATUS.get(report_type)
    if reported is None:
        raise Invalid(
            f"unknown delivery report type {report_type}",
            [{"field": "type", "message": "one of 1, 2, 4, 8, 16", "type": "report_type"}],
        )
    if len(token) > _TOKEN_MAX:
        raise _unknown()
    # The URL needs no key, so anyone can call it with made-up tokens: look first, reading only, and
    # take the write transaction (on SQLite, the file's one write lock) only for a known message whose
    # status moves; an unknown token or a repeated report writes nothing.
    async with snapshot(sessions) as session:
        seen = await session.get(SmsMessage, token_hash(token))
        if seen is None:
            raise _unknown()
        if next_status(seen.status, reported) == seen.status:
            return reported, seen.status
    async with transaction(sessions) as session:
        message = await session.get(SmsMessage, token_hash(token), with_for_update=True)
        if message is None:
            raise _unknown()
        status = next_status(message.status, reported)
        if status != message.status:
            message.status = status
            message.updated_at = utcnow()
            session.add(message)
    return reported, status


def _unknown() -> NotFound:
    return NotFound("no SMS has this delivery report token")
