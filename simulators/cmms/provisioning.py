"""The CMMS provisioning API, called by the billing worker: `/api/v1/accounts`."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status

from contracts.cmms import CMMS_PAGE_MAX, CmmsAccount, CmmsPage, CmmsRecord
from simulators.cmms.deps import SimDep, provisioning_gate, require_token
from simulators.cmms.store import ImeiConflict, UpsertOutcome

# Faults before auth: a real CMMS behind a failing load balancer never gets to check the token.
router = APIRouter(prefix="/api/v1", dependencies=[Depends(provisioning_gate), Depends(require_token)])

AccountId = Annotated[str, Path(min_length=1, max_length=128)]


@router.put(
    "/accounts/{account_id}",
    responses={201: {"model": CmmsRecord}, 400: {}, 409: {}},
)
def put_account(account_id: AccountId, account: CmmsAccount, sim: SimDep, response: Response) -> CmmsRecord:
    """Create or update an account: 201 created, 200 updated or unchanged (same version)."""
    profiles = sim.settings.profiles
    if account.profile not in profiles:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"unknown profile {account.profile!r}; known: {', '.join(sorted(profiles))}",
        )
    try:
        stored, outcome = sim.store.upsert_account(account_id, account)
    except ImeiConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    if outcome is not UpsertOutcome.UNCHANGED:
        sim.stats.record_write()
    response.status_code = status.HTTP_201_CREATED if outcome is UpsertOutcome.CREATED else status.HTTP_200_OK
    return stored.record()


@router.get("/accounts/{account_id}", responses={404: {}})
def get_account(account_id: AccountId, sim: SimDep) -> CmmsRecord:
    """The account's current record."""
    stored = sim.store.get_account(account_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown account {account_id!r}")
    return stored.record()


@router.get("/accounts")
def list_accounts(
    sim: SimDep,
    after: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=CMMS_PAGE_MAX)] = 100,
) -> CmmsPage:
    """A page of records in account id order, those after `after`; `next` is the following page's `after`."""
    accounts, following = sim.store.page_accounts(after, limit)
    return CmmsPage(accounts=[stored.record() for stored in accounts], next=following)


@router.delete("/accounts/{account_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}})
def delete_account(account_id: AccountId, sim: SimDep) -> Response:
    """Remove the account (its IMEI becomes free)."""
    if not sim.store.delete_account(account_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown account {account_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
