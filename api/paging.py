"""One paging convention for every list route: ``?offset=&limit=`` in, ``{items, next_offset}`` out.

``limit`` defaults to 100; above the server's page limit (``ApiLimits.max_page``)
the request is refused with ``page_too_large`` rather than silently truncated,
so a client never mistakes a short page for the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request

from api.deps import api_settings
from ledger.errors import LimitExceeded

MAX_OFFSET = 2**53 - 1


@dataclass(frozen=True)
class PageParams:
    offset: int
    limit: int


def page_params(request: Request, offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                limit: Annotated[int, Query(ge=1, le=MAX_OFFSET, description="page size (≤ the server's max page)")]
                = 100) -> PageParams:
    """FastAPI dependency reading and bounding the paging parameters."""
    max_page = api_settings(request).limits.max_page
    if limit > max_page:
        raise LimitExceeded(f"limit={limit} exceeds the page size limit of {max_page}", code="page_too_large",
                            field="limit")
    return PageParams(offset=offset, limit=limit)


def page(items: Sequence[Any], params: PageParams) -> dict[str, Any]:
    """Build a page from ``items`` fetched with ``limit + 1`` (the extra item only signals a next page)."""
    more = len(items) > params.limit
    return {"items": list(items[: params.limit]), "next_offset": params.offset + params.limit if more else None}


__all__ = ["PageParams", "page", "page_params"]
