"""Timeouts and retry policies shared by the workflows."""

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy

from contracts.provisioning import CMMS_REJECTED


class StepOptions(TypedDict):
    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy


# Billing database steps: short, retried until the database answers.
DB_STEP: StepOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)),
}

# CMMS calls: retried without end while the CMMS is unavailable (an order waits out an outage),
# never when it refuses for good. The 5 s cap means a CMMS that comes back is used within seconds.
CMMS_STEP: StepOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=5),
        non_retryable_error_types=[CMMS_REJECTED],
    ),
}
