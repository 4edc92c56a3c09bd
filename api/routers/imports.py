"""Bulk imports: a file of accounts (NDJSON or CSV) created in billing and provisioned, or adopted, in the
CMMS; and where an import stands."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel

from api.auth import Role
from api.deps import OutboxDep, SettingsDep, TemporalDep, require
from api.fields import AnyId
from api.problems import Problem
from contracts.imports import ImportProgress
from services import imports

router = APIRouter(prefix="/v1/imports", tags=["imports"], dependencies=[Depends(require(Role.admin))])

ImportId = Annotated[AnyId, Path(max_length=64)]

_FILE_SCHEMA = {"type": "string", "minLength": 1}
_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "One row per account: `account_id, customer_id, product_id, imei, password, in_cmms` (the last three "
            "optional). NDJSON: one JSON object per line. CSV: a header naming the columns, then one row per line."
        ),
        "content": {imports.NDJSON: {"schema": _FILE_SCHEMA}, imports.CSV: {"schema": _FILE_SCHEMA}},
    }
}


class RejectedRow(BaseModel):
    line: int  # the row's line in the file, from 1 (a CSV's header is line 1)
    reason: str


class ImportAccepted(BaseModel):
    import_id: str
    workflow_id: str
    total: int  # rows in the file
    accepted: int  # rows whose accounts were created, to be provisioned (or adopted)
    rejected: list[RejectedRow]  # rows not imported at all, each with why
    progress_url: str


@router.post(
    "",
    status_code=202,
    openapi_extra=_BODY,
    responses={
        200: {"description": "The same file again: its import, unchanged", "model": ImportAccepted},
        413: {"description": "The file is larger than IMPORT_MAX_BODY_BYTES; refused before the key is checked"},
        415: {"description": "The body is neither `application/x-ndjson` nor `text/csv`"},
        422: {
            "description": "The file cannot be read as a whole (not UTF-8, a CSV header without the columns, no rows)"
        },
    },
)
async def post_import(request: Request, outbox: OutboxDep, settings: SettingsDep, response: Response) -> ImportAccepted:
    """Import accounts: every row is checked first, and a rejected row is not imported at all; the accepted
    rows' accounts are created at once and provisioned in the CMMS at its rate limit (`in_cmms` rows are
    compared with the CMMS's record and repaired where they differ). The same file again answers the same
    and changes nothing. Files up to IMPORT_MAX_BODY_BYTES; larger ones with `python -m services.imports`."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in imports.MEDIA_TYPES:
        raise Problem(415, f"send the file as {imports.NDJSON} or {imports.CSV}")
    body = await request.body()
    report, created = await imports.submit_import(outbox, settings.secret_key, body, media_type)
    if not created:
        response.status_code = 200
    return ImportAccepted(
        import_id=report.import_id,
        workflow_id=report.workflow_id,
        total=report.total,
        accepted=report.accepted,
        rejected=[RejectedRow(line=r.line, reason=r.reason) for r in report.rejected],
        progress_url=f"/v1/imports/{report.import_id}",
    )


@router.get("/{import_id}")
async def get_import(import_id: ImportId, outbox: OutboxDep, temporal: TemporalDep) -> ImportProgress:
    """`{status: running|completed|failed, total, done, failed, rejected, ...}`: every row of the file ends
    `done`, `failed` (the CMMS refused it; the account says why) or `rejected`."""
    return await imports.import_progress(outbox, temporal, import_id)
