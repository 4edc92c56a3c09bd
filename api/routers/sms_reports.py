"""Delivery reports of code SMS, fetched by the SMS gateway (Kannel) at the `dlr-url` each SMS carries.

No API key: Kannel cannot hold one per sender, and the URL is all it has. Each SMS's URL carries a
token of its own, which can only report on that message; the database keeps the token's hash.
"""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import OutboxDep
from api.metrics import SMS_DELIVERY_REPORTS
from billing.models import SmsStatus
from billing.sms_reports import REPORT_STATUS
from services.sms_reports import record_report

router = APIRouter(prefix="/v1/sms/delivery-reports", tags=["sms"])


class DeliveryRecorded(BaseModel):
    status: SmsStatus  # the message's status after this report


# Kannel fetches the URL with GET by default, and POSTs where `dlr-url` is configured so: both are served.
@router.get("/{token}", responses={404: {}, 422: {}}, operation_id="record_delivery_report")
@router.post("/{token}", responses={404: {}, 422: {}}, operation_id="post_delivery_report")
async def delivery_report(
    token: str,
    outbox: OutboxDep,
    report_type: Annotated[int, Query(alias="type", ge=0, json_schema_extra={"enum": sorted(REPORT_STATUS)})],
) -> DeliveryRecorded:
    """Record what Kannel reports (`type` is its `%d`: 1, 2, 4, 8 or 16) for the message of `token`."""
    reported, status = await record_report(outbox.sessions, token, report_type)
    SMS_DELIVERY_REPORTS.labels(reported.value).inc()
    return DeliveryRecorded(status=status)
