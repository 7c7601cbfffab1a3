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

from api.deps import api_settings, get_ledger
from api.paging import PageParams, page, page_params
from api.problems import problem_responses
from api.scan_schemas import OrgOut, OrgPage, Page, PartDetailOut, RecallAffectedOut, TrustBundleOut
from ledger import directory, part_reads, resolve
from ledger.canonical import float_free_json
from ledger.digital_link import build_uri, check_gtin, check_serial, verify_part_sig
from ledger.domain.orgs import ORG_KINDS
from ledger.errors import NotFound, SignatureError
from ledger.qr import Ecc, Rendered, render_png, render_svg

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
        grants=lambda: part_reads.bundle_grants(ledger), recalls=lambda: resolve.bundle_recalls(ledger),
        products=lambda: part_reads.bundle_products(ledger))
    return JSONResponse(envelope, headers={"Cache-Control": "public, max-age=300"})


# --- parts ---------------------------------------------------------------------------------------

GtinQ = Annotated[str | None, Query(pattern=r"^\d{14}$", description="GTIN-14")]
LotQ = Annotated[str | None, Query(min_length=1, max_length=20, description="lot (AI 10)")]
StateQ = Annotated[str | None, Query(pattern="^[a-z_]{2,16}$", description="lifecycle state")]
OrgQ = Annotated[str | None, Query(pattern="^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$", description="an org id")]


@router.get("/parts", response_model=Page, tags=["parts"],
            summary="Search parts by GTIN, lot, state and org (custodian, brand owner, commissioner or installer)",
            responses=problem_responses(400, 422))
def list_parts(request: Request, params: Annotated[PageParams, Depends(page_params)], gtin: GtinQ = None,
               lot: LotQ = None, state: StateQ = None, org: OrgQ = None) -> Response:
    rows = part_reads.list_parts(get_ledger(request), gtin=gtin, lot=lot, state=state, org=org,
                                 offset=params.offset, limit=params.limit + 1)
    # Strings, integers, booleans and nulls only: rendered at once rather than checked against ``Page``
    # field by field (an auditor pages through every part).
    return Response(float_free_json(page(rows, params)), media_type="application/json")


@router.get("/parts/{gtin}/{serial}", response_model=PartDetailOut, tags=["parts"],
            summary="One part: state, history, flags, recalls, installations and claims",
            responses=problem_responses(404, 422))
def get_part(request: Request, gtin: str, serial: str) -> dict[str, Any]:
    return part_reads.part_detail(get_ledger(request), check_gtin(gtin), check_serial(serial))


_IMMUTABLE = "public, max-age=31536000, immutable"


def _label(request: Request, gtin: str, serial: str, sig: str | None) -> str:
    """The URI printed on the part's label: its recorded lot and a verified AI 8030 signature."""
    ledger = get_ledger(request)
    view = resolve.part_view(ledger, check_gtin(gtin), check_serial(serial))
    if view is None:
        raise NotFound(f"no part {gtin}/{serial} has been commissioned", field="serial")
    recorded = resolve.label_sig(ledger, view)
    chosen = sig or recorded
    if chosen is not None:
        verified = False
        for public_key in view.signer_keys:
            try:
                verify_part_sig(public_key, gtin, serial, chosen)
                verified = True
                break
            except SignatureError:
                continue
        if not verified:
            raise SignatureError(f"8030: not a part-id signature of {gtin}/{serial} by a key of "
                                 f"{view.facts.commissioned_by}", code="bad_signature", field="8030")
    base = api_settings(request).resolver_base or str(request.base_url)
    return build_uri(base, gtin, serial, lot=view.facts.lot, sig=chosen)


def _cached(request: Request, rendered: Rendered) -> Response:
    headers = {"ETag": rendered.etag, "Cache-Control": _IMMUTABLE}
    if_none = request.headers.get("if-none-match", "")
    if rendered.etag in {tag.strip() for tag in if_none.split(",")} or if_none.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(rendered.content, media_type=rendered.media_type, headers=headers)


SigQ = Annotated[str | None, Query(alias="8030", pattern="^[A-Za-z0-9_-]{86}$",
                                   description="the commissioning org's part-id signature, if not recorded at "
                                               "commissioning (verified before printing)")]
EccQ = Annotated[Ecc, Query(description="error correction: Q (default) or H")]
BorderQ = Annotated[int, Query(ge=4, le=16, description="quiet zone in modules")]
_QR_RESPONSES: dict[int | str, dict[str, Any]] = {304: {"description": "Not modified (If-None-Match)"},
                                                  **problem_responses(403, 404, 422)}


@router.get("/parts/{gtin}/{serial}/qr.svg", tags=["labels"], response_class=Response,
            summary="The part's QR label as SVG, sized in millimetres for print",
            responses={200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}},
                             "description": "SVG; strong ETag, immutable"}, **_QR_RESPONSES})
async def qr_svg(request: Request, gtin: str, serial: str, sig: SigQ = None,
                 size_mm: Annotated[float, Query(ge=25, le=300, description="width incl. quiet zone")] = 30.0,
                 ecc: EccQ = "Q", border: BorderQ = 4) -> Response:
    uri = await run_in_threadpool(_label, request, gtin, serial, sig)
    return _cached(request, render_svg(uri, size_mm=size_mm, border=border, ecc=ecc))


@router.get("/parts/{gtin}/{serial}/qr.png", tags=["labels"], response_class=Response,
            summary="The part's QR label as PNG (pixels per module and dpi for print)",
            responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "PNG; strong ETag, immutable"}, **_QR_RESPONSES})
async def qr_png(request: Request, gtin: str, serial: str, sig: SigQ = None,
                 scale: Annotated[int, Query(ge=2, le=40, description="pixels per module")] = 10,
                 dpi: Annotated[int, Query(ge=72, le=2400)] = 300,
                 ecc: EccQ = "Q", border: BorderQ = 4) -> Response:
    uri = await run_in_threadpool(_label, request, gtin, serial, sig)
    return _cached(request, render_png(uri, scale=scale, border=border, ecc=ecc, dpi=dpi))


# --- grants, claims, recalls, alerts ---------------------------------------------------------------

@router.get("/grants", response_model=Page, tags=["grants"], summary="Grants, filtered and paged",
            responses=problem_responses(400, 422))
def list_grants(request: Request, params: Annotated[PageParams, Depends(page_params)], grantor: OrgQ = None,
                grantee: OrgQ = None,
                kind: Annotated[str | None, Query(pattern="^(workshop|commission)$")] = None,
                status: Annotated[str | None, Query(pattern="^(active|suspended|revoked)$")] = None) -> dict[str, Any]:
    rows = part_reads.list_grants(get_ledger(request), grantor=grantor, grantee=grantee, kind=kind, status=status,
                                  offset=params.offset, limit=params.limit + 1)
    return page(rows, params)


@router.get("/claims", response_model=Page, tags=["warranty"], summary="Warranty claims, filtered and paged",
            responses=problem_responses(400, 422))
def list_claims(request: Request, params: Annotated[PageParams, Depends(page_params)], gtin: GtinQ = None,
                lot: LotQ = None, workshop: OrgQ = None, oem: OrgQ = None,
                status: Annotated[str | None, Query(pattern="^[a-z_]{2,16}$")] = None) -> dict[str, Any]:
    rows = part_reads.list_claims(get_ledger(request), gtin=gtin, lot=lot, workshop=workshop, oem=oem,
                                  status=status, offset=params.offset, limit=params.limit + 1)
    return page(rows, params)


@router.get("/recalls/{campaign_id}/affected", response_model=RecallAffectedOut, tags=["recalls"],
            summary="The parts a recall campaign covers, paged", responses=problem_responses(400, 404, 422))
def recall_affected(request: Request, campaign_id: str,
                    params: Annotated[PageParams, Depends(page_params)]) -> dict[str, Any]:
    result = part_reads.recall_affected(get_ledger(request), campaign_id, offset=params.offset,
                                        limit=params.limit + 1)
    return {"recall": result["recall"], **page(result["items"], params)}


@router.get("/alerts", response_model=Page, tags=["alerts"],
            summary="Open flags raised for an org (a brand owner's alert queue), paged",
            responses=problem_responses(400, 422))
def list_alerts(request: Request, params: Annotated[PageParams, Depends(page_params)],
                org: Annotated[str, Query(pattern="^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")]) -> dict[str, Any]:
    rows = part_reads.alerts_for(get_ledger(request), org, offset=params.offset, limit=params.limit + 1)
    return page(rows, params)


__all__ = ["router"]
