"""How every list is asked for and answered: `limit` and `cursor` in the query, `{items, next}` back."""

from typing import Annotated, Generic, Literal, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from services.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageRequest

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """One page of a list, in a stable order (by creation time, then id; oldest first unless `order=desc`)."""

    items: list[Item]
    next: str | None = Field(description="Pass as `cursor` for the following page; null on the last page")


async def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items on the page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=1000, description="The `next` of the previous page")
    ] = None,
    order: Annotated[
        Literal["asc", "desc"], Query(description="`asc`: oldest first; `desc`: newest first (keep it while paging)")
    ] = "asc",
) -> PageRequest:
    return PageRequest(limit=limit, cursor=cursor, order=order)


PageDep = Annotated[PageRequest, Depends(page_request)]
