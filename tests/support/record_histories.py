"""Record workflow histories for the replay tests (`tests/workflows/test_replay.py`) from a running system.

    .venv/bin/python -m tests.support.record_histories order-web-1001=mvno_order_completed ...

Each `workflow_id=name` writes the history of the workflow's latest run to `tests/histories/<name>.json`
as stored (payloads encrypted with the development key, which the tests use too). Record them
against `make run` after driving the use cases through the API (README walk-throughs).
"""

import sys
from pathlib import Path

from core.settings import Settings
from core.temporal import connect, run_client_script

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


async def record(pairs: list[str]) -> None:
    # The development payload key, whatever `.env` says: the tests replay with it. TEMPORAL_ADDRESS applies.
    client = await connect(Settings(_env_file=None).temporal)
    for pair in pairs:
        workflow_id, name = pair.split("=", 1)
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json() + "\n")
        print(f"{workflow_id}: {len(history.events)} events → tests/histories/{name}.json")


if __name__ == "__main__":
    run_client_script(record(sys.argv[1:]))
