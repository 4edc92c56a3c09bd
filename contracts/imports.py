"""Inputs and results of a bulk import's workflow: ids and counters only, never a password."""

from typing import Literal

from pydantic import BaseModel

WORKFLOW_ID_PREFIX = "import-"


def import_workflow_id(import_id: str) -> str:
    """One workflow per import, whose id is the import's: the same file imported again starts nothing."""
    return f"{WORKFLOW_ID_PREFIX}{import_id}"


class ImportProgress(BaseModel):
    """Where an import stands: its result, its `progress` query, and carried over continue-as-new.

    Every row of the file is counted once: `total` = `rejected` + the accepted rows, and an accepted row
    ends `done` (the CMMS holds it as billing has it) or `failed` (the CMMS refused it; the account says why).
    """

    import_id: str
    # `failed`: the workflow ended without finishing (terminated by an operator, say).
    status: Literal["running", "completed", "failed"] = "running"
    total: int = 0  # rows in the file
    accepted: int = 0  # rows whose accounts were created in billing
    done: int = 0
    failed: int = 0
    rejected: int = 0  # rows refused before anything was written (the import's answer lists them)
    adopted: int = 0  # of `done`, rows the CMMS already held (`in_cmms`) exactly as billing has them
    repaired: int = 0  # of `done`, rows the CMMS already held, differently: brought in line


class ImportWorkflowInput(BaseModel):
    import_id: str
    # Set only by continue-as-new: where the walk stands.
    progress: ImportProgress | None = None
    after_account_id: str | None = None


class ImportPageInput(BaseModel):
    """A page of the import's rows (IMPORT_PAGE_SIZE, the worker's setting), after the previous one."""

    import_id: str
    after_account_id: str | None = None  # keyset pagination: the page starts after this id


class ImportedRow(BaseModel):
    account_id: str
    in_cmms: bool


class ImportPage(BaseModel):
    rows: list[ImportedRow]
    next_after: str | None  # None: this was the last page
    # The file's counts, on the first page only.
    total: int | None = None
    accepted: int | None = None
    rejected: int | None = None


class AdoptInput(BaseModel):
    account_id: str


class AdoptResult(BaseModel):
    """How the CMMS's record of an `in_cmms` row compared with billing's."""

    account_id: str
    outcome: Literal["same", "different", "missing"]
    push: bool = False  # pushed even though the same (to start the account's workflow, which wakes for it)


class PushImportInput(BaseModel):
    import_id: str
    account_ids: list[str]  # pushed through each account's own workflow


class PushImportResult(BaseModel):
    done: int
    failed: int
