"""services.delivery names the workflows by string (an import cycle forbids the classes): the names
must be the ones the workflows are registered under."""

from temporalio import workflow

from services import delivery
from workflows.account import AccountWorkflow
from workflows.customer_rollout import CustomerRolloutWorkflow
from workflows.messaging_rollout import MessagingRolloutWorkflow
from workflows.mvno_order import MvnoOrderWorkflow
from workflows.reconciliation import ReconciliationWorkflow


def test_the_delivered_names_are_the_registered_ones() -> None:
    pairs = [
        (delivery.ORDER_WORKFLOW, MvnoOrderWorkflow),
        (delivery.ACCOUNT_WORKFLOW, AccountWorkflow),
        (delivery.ROLLOUT_WORKFLOW, CustomerRolloutWorkflow),
        (delivery.MESSAGING_ROLLOUT_WORKFLOW, MessagingRolloutWorkflow),
        (delivery.RECONCILIATION_WORKFLOW, ReconciliationWorkflow),
    ]
    for name, cls in pairs:
        definition = workflow._Definition.must_from_class(cls)
        assert definition.name == name
    account = workflow._Definition.must_from_class(AccountWorkflow)
    assert delivery.SYNC_UPDATE in account.updates
    assert delivery.CHANGED_SIGNAL in account.signals
    assert delivery.CHANGED_SIGNAL in workflow._Definition.must_from_class(CustomerRolloutWorkflow).signals
