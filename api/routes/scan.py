"""The GS1 Digital Link resolver: ``GET /01/{gtin}/21/{serial}`` (SPEC §3.7, §5.1).

One URI, three answers, by content negotiation:

- ``?linkType=linkset`` or ``Accept: application/linkset+json`` → the GS1
  linkset (RFC 9264) naming the verification page, the JSON verdict and the
  part's record;
- ``Accept: application/json`` (or ``?format=json``) → the verdict
  (:class:`~api.scan_schemas.ScanVerdict`) with an inclusion proof;
- anything else (a phone's browser) → the verification page, in the language
  of ``?lang=`` or ``Accept-Language`` (English, Chinese).

The caller names its workshop with ``?workshop=<org_id>`` or the header
``X-Workshop-Org``; the verdict then says whether that workshop is authorized
for this part now and under which grant. (It is a question, not a login:
anyone may ask whether a workshop is authorized, as anyone may read the log.)

Compressed Digital Link URIs (``/<base64url>``) are decompressed and answered
the same way. The resolver is rate limited per client address (429 with
``Retry-After``).
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.convertors import Convertor, register_url_convertor

from api.deps import api_settings, get_ledger
from api.pages import choose_lang, render_page
from api.problems import problem_responses
from api.ratelimit import scan_rate_limit
from api.scan_schemas import ScanVerdict
from ledger.digital_link import PartLink, check_gtin, check_lot, check_serial, decode_part_sig, parse_uri
from ledger.entries import is_valid_org_id, utc_now
from ledger.errors import InvalidInput
from ledger.resolve import CachedVerdict, VerdictCache, resolve_scan, scan_authorization, scan_facts
from ledger.storage.proof_reads import LogSize, LogSizeProbe

router = APIRouter(tags=["scan"], dependencies=[Depends(scan_rate_limit)])
#: Compressed Digital Links are one path segment; this router must be included *after* every other one.
compressed_router = APIRouter(tags=["scan"], dependencies=[Depends(scan_rate_limit)])


class CompressedLinkConvertor(Convertor[str]):
    """Matches only path segments that can be a compressed Digital Link, so other paths still 404."""

    regex = "[A-Za-z0-9_-]{10,512}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("gs1dlc", CompressedLinkConvertor())

LINKSET_JSON = "application/linkset+json"
ACTIVITY_PATTERN = "^[a-z][a-z_]{1,39}$"

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The verdict (JSON), the verification page (HTML) or the GS1 linkset",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScanVerdict"}},
                      "text/html": {"schema": {"type": "string"}},
                      LINKSET_JSON: {"schema": {"$ref": "#/components/schemas/LinksetOut"}}}},
    **problem_responses(404, 422, 429),
}


def _verdict_cache(request: Request) -> VerdictCache:
    cache: VerdictCache | None = getattr(request.app.state, "verdict_cache", None)
    if cache is None:
        cache = request.app.state.verdict_cache = VerdictCache()
    return cache


def _size_probe(request: Request) -> LogSizeProbe:
    state = request.app.state
    db = get_ledger(request).db
    probe: LogSizeProbe | None = getattr(state, "log_size_probe", None)
    if probe is None or probe.db is not db:
        probe = state.log_size_probe = LogSizeProbe(db)
    return probe


async def _log_size(request: Request) -> LogSize | None:
    """The log's size from one tiny read (on the event loop for a local SQLite file); ``None`` if it failed."""
    probe = _size_probe(request)
    try:
        return probe.size() if probe.blocking_is_cheap else await run_in_threadpool(probe.size)
    except (sqlite3.Error, SQLAlchemyError):  # the probe is only a shortcut: the full read decides
        return None


async def _json_verdict(request: Request, link: PartLink, *, base: str, workshop: str | None, activity: str,
                        headers: dict[str, str]) -> Response:
    """The JSON verdict. A label scanned again at an unchanged log size is answered from the cache with one
    size read and no thread hop; the bytes are those of rendering the freshly computed verdict."""
    ledger = get_ledger(request)
    cache = _verdict_cache(request)
    now = utc_now()
    size = await _log_size(request)
    facts: CachedVerdict | None = cache.get(VerdictCache.key(link, base, size)) if size is not None else None
    if facts is None:
        facts = await run_in_threadpool(scan_facts, ledger, link, resolver_base=base, cache=cache)
    authorization = None
    if workshop is not None:
        authorization = await run_in_threadpool(scan_authorization, ledger, link, workshop=workshop,
                                                activity=activity, now=now)
    return Response(facts.to_json(authorization=authorization, now=now), media_type="application/json",
                    headers=headers)


def _resolver_base(request: Request) -> str:
    configured = api_settings(request).resolver_base
    return configured.rstrip("/") if configured else str(request.base_url).rstrip("/")


def _wants(request: Request, link_type: str | None, fmt: str | None) -> str:
    if link_type == "linkset" or fmt == "linkset":
        return "linkset"
    if fmt in {"json", "html"}:
        return str(fmt)
    accept = request.headers.get("accept", "").lower()
    if LINKSET_JSON in accept:
        return "linkset"
    html_pos = accept.find("text/html")
    json_pos = accept.find("application/json")
    if json_pos >= 0 and (html_pos < 0 or json_pos < html_pos):
        return "json"
    return "html"


def _workshop(request: Request, workshop: str | None) -> str | None:
    value = workshop or request.headers.get("x-workshop-org")
    if value is not None and not is_valid_org_id(value):
        raise InvalidInput("workshop: expected an org id (3–64 characters a-z, 0-9 and '-')", code="invalid_field",
                           field="workshop")
    return value


def _linkset(base: str, link: PartLink) -> dict[str, Any]:
    anchor = f"{base}/01/{link.gtin}/21/{link.serial}"
    from urllib.parse import quote

    quoted = f"{base}/01/{link.gtin}/21/{quote(link.serial, safe='')}"
    return {"linkset": [{
        "anchor": anchor,
        "https://gs1.org/voc/defaultLink": [{"href": quoted, "title": "Part verification", "type": "text/html",
                                             "hreflang": ["en", "zh"]}],
        "https://gs1.org/voc/verificationService": [{"href": quoted + "?format=json", "title": "Verdict (JSON)",
                                                     "type": "application/json"}],
        "https://gs1.org/voc/traceability": [{"href": f"{base}/v1/parts/{link.gtin}/{quote(link.serial, safe='')}",
                                              "title": "Part state and history", "type": "application/json"}],
        "https://gs1.org/voc/recallStatus": [{"href": quoted + "?format=json", "title": "Recall status",
                                              "type": "application/json"}],
    }]}


async def _answer(request: Request, link: PartLink, *, link_type: str | None, fmt: str | None, lang: str | None,
                  workshop: str | None, activity: str) -> Response:
    base = _resolver_base(request)
    wanted = _wants(request, link_type, fmt)
    vary = {"Vary": "Accept, Accept-Language", "Cache-Control": "no-cache"}
    if wanted == "linkset":
        return JSONResponse(_linkset(base, link), media_type=LINKSET_JSON, headers=vary)
    caller = _workshop(request, workshop)
    if wanted == "json":
        return await _json_verdict(request, link, base=base, workshop=caller, activity=activity, headers=vary)
    verdict = await run_in_threadpool(resolve_scan, get_ledger(request), link, resolver_base=base, now=utc_now(),
                                      workshop=caller, activity=activity, cache=_verdict_cache(request))
    chosen = choose_lang(lang, request.headers.get("accept-language"))
    query = {k: v for k, v in request.query_params.items() if k not in {"lang", "format"}}
    page = render_page(verdict, lang=chosen, self_path=request.url.path, query=query)
    return HTMLResponse(page, headers={**vary, "Content-Language": chosen})


Lot = Annotated[str | None, Query(alias="10", description="lot (GS1 AI 10)")]
Sig = Annotated[str | None, Query(alias="8030", description="the commissioning org's signature (GS1 AI 8030)")]
LinkType = Annotated[str | None, Query(alias="linkType", pattern="^(linkset|all)$",
                                       description="`linkset` for the GS1 linkset")]
Format = Annotated[str | None, Query(alias="format", pattern="^(json|html|linkset)$",
                                     description="override content negotiation")]
Lang = Annotated[str | None, Query(pattern="^(en|zh)$", description="page language (overrides Accept-Language)")]
Workshop = Annotated[str | None, Query(description="your workshop's org id, to learn whether it is authorized "
                                                   "(or send X-Workshop-Org)")]
Activity = Annotated[str, Query(pattern=ACTIVITY_PATTERN, description="the activity to authorize")]
CompressedSegment = Annotated[str, Path(description="a compressed Digital Link (base64url)",
                                        pattern="^[A-Za-z0-9_-]{10,512}$")]


@router.get("/01/{gtin}/21/{serial:path}", response_model=ScanVerdict, responses=_RESPONSES,
            summary="Resolve a part's GS1 Digital Link: verdict (JSON), verification page (HTML) or linkset")
async def resolve(request: Request, gtin: str, serial: str, lot: Lot = None, sig: Sig = None,
                  link_type: LinkType = None, fmt: Format = None, lang: Lang = None, workshop: Workshop = None,
                  activity: Activity = "install") -> Response:
    if link_type == "all":
        link_type = "linkset"
    if sig is not None:
        decode_part_sig(sig)
    link = PartLink(gtin=check_gtin(gtin), serial=check_serial(serial),
                    lot=check_lot(lot) if lot is not None else None, sig=sig)
    return await _answer(request, link, link_type=link_type, fmt=fmt, lang=lang, workshop=workshop,
                         activity=activity)


@router.get("/01/{gtin}/10/{path_lot}/21/{serial:path}", response_model=ScanVerdict, responses=_RESPONSES,
            summary="The same, with the lot as a path qualifier (GS1 Digital Link 01/10/21 form)")
async def resolve_lot_path(request: Request, gtin: str, path_lot: str, serial: str, sig: Sig = None,
                           link_type: LinkType = None, fmt: Format = None, lang: Lang = None,
                           workshop: Workshop = None, activity: Activity = "install") -> Response:
    return await resolve(request, gtin, serial, path_lot, sig, link_type, fmt, lang, workshop, activity)


@compressed_router.get(
    "/{compressed:gs1dlc}", response_model=ScanVerdict, responses=_RESPONSES,
    summary="Resolve a compressed GS1 Digital Link (decompressed, then as /01/{gtin}/21/{serial})")
async def resolve_compressed(request: Request, compressed: CompressedSegment,
                             link_type: LinkType = None, fmt: Format = None, lang: Lang = None,
                             workshop: Workshop = None, activity: Activity = "install") -> Response:
    link = parse_uri(str(request.url))
    return await _answer(request, link, link_type="linkset" if link_type else None, fmt=fmt, lang=lang,
                         workshop=workshop, activity=activity)


__all__ = ["compressed_router", "router"]
