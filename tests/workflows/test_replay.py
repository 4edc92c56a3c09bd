"""Histories recorded from real runs (`tests/histories/`, see `tests/support/record_histories.py`)
replay with today's workflow code: a change that would break a running workflow fails here. Such a
change goes through `workflow.patched`, and the histories recorded before it stay."""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from core.settings import Settings
from core.temporal import data_converter
from worker import WORKFLOWS

HISTORIES = [
    WorkflowHistory.from_json(path.stem, path.read_text())
    for path in sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))
]


def test_every_workflow_type_has_a_recorded_history() -> None:
    types = {history.events[0].workflow_execution_started_event_attributes.workflow_type.name for history in HISTORIES}
    assert types == {workflow.__name__ for workflow in WORKFLOWS}


@pytest.mark.parametrize("history", HISTORIES, ids=[history.workflow_id for history in HISTORIES])
async def test_a_recorded_history_replays(history: WorkflowHistory) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(Settings(_env_file=None).temporal))
    await replayer.replay_workflow(history)
