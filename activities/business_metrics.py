"""Business metrics, exported with the SDK's on the worker's Prometheus endpoint (WORKER_METRICS_PORT):
orders by outcome, CMMS calls by result with their latency, signups by outcome, SMS by the gateway's answer,
billing's failures (beside PortaBilling, its API's).

Recorded through the activity's metric meter, so they carry the SDK's own labels (namespace, task
queue, activity type) and one business label of a fixed vocabulary: never an id, a number or a
reason, so the number of series stays bounded. Without a metrics runtime (tests) they go nowhere.
"""

from typing import Literal

from temporalio import activity

OrderOutcome = Literal["completed", "failed"]
CmmsOperation = Literal["upsert", "delete"]
CmmsResult = Literal["ok", "rejected", "unavailable"]
SignupOutcome = Literal["verified", "expired", "failed"]
SmsResult = Literal["accepted", "rejected", "unavailable", "unanswered"]
BillingFailure = Literal["outage", "misconfigured", "refused"]
StatusRefusal = Literal["refused", "gone"]


def order_finished(outcome: OrderOutcome) -> None:
    meter = activity.metric_meter()
    meter.create_counter("business_orders_total", "Orders finished, by outcome").add(1, {"outcome": outcome})


def cmms_called(operation: CmmsOperation, result: CmmsResult, seconds: float) -> None:
    """One provisioning call to the CMMS: `unavailable` is a try to be repeated (an outage, a 5xx, a 429),
    `rejected` a refusal for good (a 4xx)."""
    meter = activity.metric_meter().with_additional_attributes({"operation": operation, "result": result})
    meter.create_counter("business_cmms_calls_total", "Provisioning calls to the CMMS, by result").add(1)
    meter.create_histogram_float("business_cmms_call_seconds", "Time of a call to the CMMS", "s").record(seconds)


def signup_finished(outcome: SignupOutcome) -> None:
    meter = activity.metric_meter()
    meter.create_counter("business_signups_total", "Signups finished, by outcome").add(1, {"outcome": outcome})


def sms_sent(result: SmsResult) -> None:
    """A code sent to the SMS gateway: `accepted` for delivery, `rejected` for good, `unavailable` to retry,
    `unanswered` (no answer in time: it may have gone out, and is not sent again)."""
    meter = activity.metric_meter()
    meter.create_counter("business_sms_total", "Security codes handed to the SMS gateway, by its answer").add(
        1, {"result": result}
    )


def billing_failed(kind: BillingFailure) -> None:
    """Billing (beside PortaBilling: its API) could not be read or written for a push: `outage` and
    `misconfigured` (it refuses our login) are tried again, `refused` fails the push for good."""
    meter = activity.metric_meter()
    meter.create_counter(
        "business_billing_failures_total", "Failed reads or writes of billing for a push, by kind"
    ).add(1, {"kind": kind})


def status_refused(kind: StatusRefusal) -> None:
    """Billing (PortaBilling's status API) refused a push's outcome: `refused` (a body it will not take:
    a group it does not know, an encoding it does not read), `gone` (the account is no longer there). The
    push stands and is not repeated."""
    meter = activity.metric_meter()
    meter.create_counter("business_billing_status_refused_total", "Push outcomes billing refused to keep, by kind").add(
        1, {"kind": kind}
    )
