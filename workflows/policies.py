"""Timeouts and retry policies shared by the workflows."""

from datetime import timedelta
from typing import NotRequired, TypedDict

from temporalio import workflow
from temporalio.common import RetryPolicy

from contracts.provisioning import ACCOUNT_NOT_FOUND, CMMS_MAX_RETRY_INTERVAL, CMMS_REJECTED


class StepOptions(TypedDict):
    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy
    task_queue: NotRequired[str]


class HeartbeatStep(TypedDict):
    """A long activity that heartbeats: a lost worker is noticed in seconds, not at its deadline."""

    start_to_close_timeout: timedelta
    heartbeat_timeout: timedelta
    retry_policy: RetryPolicy


def cmms_task_queue(task_queue: str) -> str:
    """CMMS calls have a task queue of their own, so the server can hold them to the CMMS's rate limit."""
    return f"{task_queue}-cmms"


# Billing database steps: short, retried until the database answers.
DB_STEP: StepOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)),
}

# Syncing many accounts through their workflows (activities.account_sync: a rollout's page, a
# reconciliation's repairs) waits for the CMMS, through an outage if need be: no overall deadline, but a
# heartbeat, so a lost worker is noticed in seconds and the batch resumes on another.
ACCOUNT_SYNC_STEP: HeartbeatStep = {
    "start_to_close_timeout": timedelta(days=1),
    "heartbeat_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)),
}

# How long a CMMS step may take (billing's read, the calls, billing's write) before it is tried again;
# also how long a step under way on a worker that died waits before another worker takes it.
CMMS_STEP_TIMEOUT = timedelta(seconds=30)

# CMMS calls: retried without end while the CMMS is unavailable (an order waits out an outage),
# never when it refuses for good.
_CMMS_STEP: StepOptions = {
    "start_to_close_timeout": CMMS_STEP_TIMEOUT,
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=CMMS_MAX_RETRY_INTERVAL,
        non_retryable_error_types=[CMMS_REJECTED, ACCOUNT_NOT_FOUND],
    ),
}


def cmms_step() -> StepOptions:
    """Options for an activity that calls the CMMS, from inside a workflow."""
    return _CMMS_STEP | {"task_queue": cmms_task_queue(workflow.info().task_queue)}
