"""The read API of SPEC §5.1: orgs, grants, parts, labels, claims, recalls, alerts, the trust bundle, vehicles.

Every list is paged (``offset``/``limit`` → ``{items, next_offset}``); every
error is an RFC 9457 problem. QR labels are immutable per content: they carry
a strong ``ETag`` and ``Cache-Control: public, max-age=31536000, immutable``
and answer ``If-None-Match`` with 304, so a label sheet reprinted a thousand
times is rendered once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api.deps import get_ledger
from api.paging import PageParams, page, page_params
from api.problems import problem_responses
from api.scan_schemas import OrgOut, OrgPage, TrustBundleOut
from ledger import directory, resolve
from ledger.domain.orgs import ORG_KINDS

router = APIRouter(prefix="/v1")

OrgKind = Annotated[str | None, Query(description=f"one of {', '.join(ORG_KINDS)}", pattern="^[a-z_]{2,16}$")]


@router.get("/orgs", response_model=OrgPage, tags=["orgs"], summary="Registered orgs, in registration order",
            responses=problem_responses(400, 422))
def list_orgs(request: Request, params: Annotated[PageParams, Depends(page_params)],
              kind: OrgKind = None) -> dict[str, Any]:
    rows = directory.list_orgs(get_ledger(request), kind=kind, offset=params.offset, limit=params.limit + 1)
    return page(rows, params)


@router.get("/orgs/{org_id}", response_model=OrgOut, tags=["orgs"],
            summary="One org with its keys (revoked keys included, with compromise times)",
            responses=problem_responses(404, 422))
def get_org(request: Request, org_id: str) -> dict[str, Any]:
    return directory.get_org(get_ledger(request), org_id)


@router.get("/trust-bundle", response_model=TrustBundleOut, tags=["offline"],
            summary="The signed offline trust bundle (org keys, grants, recalls, latest checkpoint)",
            responses=problem_responses(404, 422))
async def get_trust_bundle(request: Request,
                           ttl_hours: Annotated[int, Query(ge=1, le=24 * 30,
                                                           description="validity in hours (default 7 days)")]
                           = 168) -> Response:
    ledger = get_ledger(request)
    now = datetime.now(UTC).replace(microsecond=0)
    envelope = await run_in_threadpool(
        directory.trust_bundle, ledger, now=now, ttl=timedelta(hours=ttl_hours),
        grants=lambda: resolve.bundle_grants(ledger), recalls=lambda: resolve.bundle_recalls(ledger))
    return JSONResponse(envelope, headers={"Cache-Control": "public, max-age=300"})


__all__ = ["router"]
