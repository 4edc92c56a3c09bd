"""The workflows as callers address them: each workflow's registered name, and its signals, updates and
queries, with the types of what goes in and what comes out.

The workflow classes declare their names from these refs (`@workflow.defn(name=ACCOUNT.name)`), and
core.gateway, the one module that calls Temporal, takes a ref and an argument of the ref's type: a call
site cannot name a workflow that does not exist, nor hand it the wrong input. The names are recorded in
every history and visibility query: they never change.
"""

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from contracts.imports import ImportProgress, ImportWorkflowInput
from contracts.orders import MvnoOrderInput, MvnoOrderResult
from contracts.provisioning import AccountSyncResult, AccountWorkflowInput, ProvisionAccountResult
from contracts.reconciliation import ReconciliationInput, ReconciliationProgress
from contracts.rollouts import CustomerRolloutInput, RolloutChange, RolloutProgress
from contracts.signups import (
    ConfirmRequest,
    OttSignupInput,
    OttSignupResult,
    SendCodeRequest,
    SignupView,
    VerifyRequest,
    VerifyResult,
)
from contracts.wallets import MessagingRolloutInput, MessagingRolloutResult

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class WorkflowRef(Generic[In, Out]):
    """A workflow type: started with an `In`, ends with an `Out`."""

    name: str
    input: type[In]
    result: type[Out]


@dataclass(frozen=True)
class SignalRef(Generic[In]):
    """A signal of `workflow`; `input` None: it carries no argument."""

    workflow: WorkflowRef[Any, Any]
    name: str
    input: type[In] | None = None


@dataclass(frozen=True)
class UpdateRef(Generic[In, Out]):
    """An update of `workflow`, answering an `Out`; `input` None: it carries no argument."""

    workflow: WorkflowRef[Any, Any]
    name: str
    result: type[Out]
    input: type[In] | None = None


@dataclass(frozen=True)
class QueryRef(Generic[Out]):
    """A query of `workflow`, answering an `Out`."""

    workflow: WorkflowRef[Any, Any]
    name: str
    result: type[Out]


# An account's own workflow, the one writer of its CMMS record.
ACCOUNT: WorkflowRef[AccountWorkflowInput, ProvisionAccountResult | None] = WorkflowRef(
    "AccountWorkflow", AccountWorkflowInput, ProvisionAccountResult
)
ACCOUNT_CHANGED: SignalRef[None] = SignalRef(ACCOUNT, "changed")
ACCOUNT_SYNC: UpdateRef[None, AccountSyncResult] = UpdateRef(ACCOUNT, "sync", AccountSyncResult)
# (A null answer decodes to None whatever the type: `str` stands for `str | None`, which is not a class.)
ACCOUNT_LAST_ERROR: QueryRef[str | None] = QueryRef(ACCOUNT, "last_error", str)

MVNO_ORDER: WorkflowRef[MvnoOrderInput, MvnoOrderResult] = WorkflowRef(
    "MvnoOrderWorkflow", MvnoOrderInput, MvnoOrderResult
)

CUSTOMER_ROLLOUT: WorkflowRef[CustomerRolloutInput, RolloutProgress] = WorkflowRef(
    "CustomerRolloutWorkflow", CustomerRolloutInput, RolloutProgress
)
ROLLOUT_CHANGED: SignalRef[RolloutChange] = SignalRef(CUSTOMER_ROLLOUT, "changed", RolloutChange)
ROLLOUT_PROGRESS: QueryRef[RolloutProgress] = QueryRef(CUSTOMER_ROLLOUT, "progress", RolloutProgress)

MESSAGING_ROLLOUT: WorkflowRef[MessagingRolloutInput, MessagingRolloutResult] = WorkflowRef(
    "MessagingRolloutWorkflow", MessagingRolloutInput, MessagingRolloutResult
)

OTT_SIGNUP: WorkflowRef[OttSignupInput, OttSignupResult] = WorkflowRef(
    "OttSignupWorkflow", OttSignupInput, OttSignupResult
)
SIGNUP_STATE: QueryRef[OttSignupResult] = QueryRef(OTT_SIGNUP, "state", OttSignupResult)
SIGNUP_SEND_CODE: UpdateRef[SendCodeRequest, SignupView] = UpdateRef(
    OTT_SIGNUP, "send_code", SignupView, SendCodeRequest
)
SIGNUP_VERIFY: UpdateRef[VerifyRequest, VerifyResult] = UpdateRef(OTT_SIGNUP, "verify", VerifyResult, VerifyRequest)
SIGNUP_CONFIRM: UpdateRef[ConfirmRequest, VerifyResult] = UpdateRef(OTT_SIGNUP, "confirm", VerifyResult, ConfirmRequest)

RECONCILIATION: WorkflowRef[ReconciliationInput, ReconciliationProgress] = WorkflowRef(
    "ReconciliationWorkflow", ReconciliationInput, ReconciliationProgress
)
RECONCILIATION_PROGRESS: QueryRef[ReconciliationProgress] = QueryRef(RECONCILIATION, "progress", ReconciliationProgress)

BULK_IMPORT: WorkflowRef[ImportWorkflowInput, ImportProgress] = WorkflowRef(
    "ImportWorkflow", ImportWorkflowInput, ImportProgress
)
IMPORT_PROGRESS: QueryRef[ImportProgress] = QueryRef(BULK_IMPORT, "progress", ImportProgress)

WORKFLOWS: tuple[WorkflowRef[Any, Any], ...] = (
    ACCOUNT,
    MVNO_ORDER,
    CUSTOMER_ROLLOUT,
    MESSAGING_ROLLOUT,
    OTT_SIGNUP,
    RECONCILIATION,
    BULK_IMPORT,
)
