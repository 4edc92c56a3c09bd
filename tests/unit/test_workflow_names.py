"""The workflows are addressed by the names in contracts.workflows (core.gateway calls them by name, the
API's visibility counts filter on them): each workflow class must register exactly those names, for
itself and for its signals, updates and queries."""

from typing import Any

from temporalio import workflow

from contracts import workflows as refs
from worker import WORKFLOWS


def _definitions() -> dict[str, Any]:
    return {str(definition.name): definition for definition in map(workflow._Definition.must_from_class, WORKFLOWS)}


def test_every_workflow_registers_its_contract_name() -> None:
    assert sorted(_definitions()) == sorted(ref.name for ref in refs.WORKFLOWS)


def test_every_signal_update_and_query_is_registered_by_its_workflow() -> None:
    definitions = _definitions()
    handlers = [vars(refs)[name] for name in dir(refs) if not name.startswith("_")]
    signals = [ref for ref in handlers if isinstance(ref, refs.SignalRef)]
    updates = [ref for ref in handlers if isinstance(ref, refs.UpdateRef)]
    queries = [ref for ref in handlers if isinstance(ref, refs.QueryRef)]
    assert signals and updates and queries
    for signal in signals:
        assert signal.name in definitions[signal.workflow.name].signals, signal
    for update in updates:
        assert update.name in definitions[update.workflow.name].updates, update
    for query in queries:
        assert query.name in definitions[query.workflow.name].queries, query
