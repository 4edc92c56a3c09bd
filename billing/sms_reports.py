"""Delivery reports of code SMS: the per-message token, Kannel's report types, and which report wins.

Kannel fetches the `dlr-url` it was given with `%d` replaced by the report type (its user guide's
"SMS Delivery Reports" chapter): 1 delivered to the phone, 2 not delivered to the phone, 4 buffered
on the SMSC, 8 accepted by the SMSC, 16 rejected by the SMSC.
"""

import hashlib
import secrets
from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.models import SmsMessage, SmsStatus

REPORT_STATUS: dict[int, SmsStatus] = {
    1: SmsStatus.delivered,
    2: SmsStatus.undelivered,
    4: SmsStatus.queued,
    8: SmsStatus.accepted,
    16: SmsStatus.rejected,
}

# Reports may arrive out of order (the phone's before the SMSC's acceptance): a status only ever
# moves forward, and a final one stays.
_RANK = {
    SmsStatus.queued: 0,
    SmsStatus.accepted: 1,
    SmsStatus.rejected: 2,
    SmsStatus.delivered: 2,
    SmsStatus.undelivered: 2,
}


def new_report_token() -> str:
    """A per-message capability to report on that message only (never stored: its hash is)."""
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def next_status(current: SmsStatus, reported: SmsStatus) -> SmsStatus:
    """The message's status once `reported` has come in."""
    if _RANK[current] == 2 or _RANK[reported] <= _RANK[current]:
        return current
    return reported


async def sent_sms(session: AsyncSession, signup_id: str) -> Sequence[SmsMessage]:
    """The code SMS of a signup, oldest first."""
    query = select(SmsMessage).where(SmsMessage.signup_id == signup_id).order_by(col(SmsMessage.sent_at))
    return (await session.exec(query)).all()
