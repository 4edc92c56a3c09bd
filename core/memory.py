"""Garbage collection for the long-running processes (API, worker)."""

import gc


def freeze_startup_objects() -> None:
    """Move everything alive once a process has started out of the collector's sight.

    A full collection walks every tracked object: in the API, some 130,000 from FastAPI, pydantic,
    SQLAlchemy and the Temporal client, 60 to 100 ms of CPU with every request on hold. Frozen, they
    are never scanned again, and a full collection only walks what the process made since (4 ms).
    """
    gc.collect()
    gc.freeze()
