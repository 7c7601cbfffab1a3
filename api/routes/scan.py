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

import functools
import re
import sqlite3
from typing import Annotated, Any
from urllib.parse import parse_qsl

import psycopg
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import api_settings, get_ledger
from api.pages import choose_lang, render_page
from api.problems import problem_responses
from api.ratelimit import scan_rate_limit, take_scan_token
from api.scan_schemas import ScanVerdict
from ledger.digital_link import PartLink, check_gtin, check_lot, check_serial, decode_part_sig, parse_uri
from ledger.entries import is_valid_org_id, utc_now
from ledger.errors import InvalidInput
from ledger.resolve import (
    CachedVerdict,
    VerdictCache,
    resolve_scan,
    scan_authorization,
    scan_facts,
    scan_facts_async,
    scan_facts_fast,
)
from ledger.storage.proof_reads import SnapshotReads

router = APIRouter(tags=["scan"])
#: Compressed Digital Links are one path segment; this router must be included *after* every other one.
compressed_router = APIRouter(tags=["scan"])


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


def _snapshot_reads(request: Request) -> SnapshotReads:
    state = request.app.state
    db = get_ledger(request).db
    reads: SnapshotReads | None = getattr(state, "scan_reads", None)
    if reads is None or reads.db is not db:
        reads = state.scan_reads = SnapshotReads(db)
    return reads


async def _json_verdict(request: Request, link: PartLink, *, base: str, workshop: str | None, activity: str,
                        headers: dict[str, str]) -> Response:
    """The JSON verdict, rendered as the bytes of the freshly computed verdict would be.

    A label scanned again at an unchanged log size is answered from the cache
    after one size read, while such repeats are common (``VerdictCache.probe_pays``;
    otherwise the verdict's statement reads the size and finds a cached verdict
    just as well). On a local SQLite file the reads (microseconds to a
    few hundred of them) run on the event loop: the process is bound by one
    interpreter lock anyway, and a thread hop per scan costs more than it
    frees (:func:`~ledger.resolve.scan_facts_fast`). On PostgreSQL the size
    read is one query on an asyncio connection (no thread), shared by
    concurrent scans, and a verdict to compute is one statement on another,
    rarely two (:func:`~ledger.resolve.scan_facts_async`). Whatever those paths cannot
    answer (an unknown part, a database error) is computed in the thread pool.
    """
    ledger = get_ledger(request)
    cache = _verdict_cache(request)
    reads = _snapshot_reads(request)
    now = utc_now()
    facts: CachedVerdict | None = None
    counted = False
    try:
        if cache.probe_pays:
            size = await reads.size_async()
            # A miss is counted by the look-up that follows it (below): one count per scan.
            facts = cache.get(VerdictCache.key(link, base, size), count=False)
            if facts is not None:
                cache.count_hit()
        if facts is None and (reads.local or reads.postgres):
            counted = True  # the one-statement paths count the scan's look-up
            if reads.local:
                facts = scan_facts_fast(ledger, link, resolver_base=base, cache=cache, reads=reads)
            else:
                facts = await scan_facts_async(ledger, link, resolver_base=base, cache=cache, reads=reads)
    except (sqlite3.OperationalError, psycopg.Error):  # e.g. busy beyond a short timeout: take the full path
        facts = None
    if facts is None:
        facts = await run_in_threadpool(functools.partial(scan_facts, count=not counted), ledger, link,
                                        resolver_base=base, cache=cache, reads=None if reads.local else reads)
    authorization = None
    if workshop is not None:
        authorization = await run_in_threadpool(scan_authorization, ledger, link, workshop=workshop,
                                                activity=activity, now=now)
    return Response(facts.to_json(authorization=authorization, now=now), media_type="application/json",
                    headers=headers)


def _resolver_base(request: Request) -> str:
    configured = api_settings(request).resolver_base
    if configured:
        return configured.rstrip("/")
    scope = request.scope
    host = next((value for key, value in scope["headers"] if key == b"host"), None)
    server = scope.get("server")
    return _base_url(scope.get("scheme", "http"), host, tuple(server) if server else None,
                     scope.get("app_root_path", scope.get("root_path", "")))


@functools.lru_cache(maxsize=256)
def _base_url(scheme: str, host: bytes | None, server: tuple[str, int | None] | None, root_path: str) -> str:
    """``str(request.base_url)`` without its trailing slash, from exactly the parts of the scope Starlette builds
    it from (building a URL object per scan costs more than the rest of a cached scan)."""
    scope: dict[str, Any] = {"type": "http", "scheme": scheme, "server": server, "root_path": root_path,
                             "path": "/", "query_string": b"", "headers": [] if host is None else [(b"host", host)]}
    return str(Request(scope).base_url).rstrip("/")


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


_VARY = (("Vary", "Accept, Accept-Language"), ("Cache-Control", "no-cache"))


async def _answer(request: Request, link: PartLink, *, link_type: str | None, fmt: str | None, lang: str | None,
                  workshop: str | None, activity: str) -> Response:
    base = _resolver_base(request)
    wanted = _wants(request, link_type, fmt)
    vary = dict(_VARY)
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


LINK_TYPE_PATTERN = "^(linkset|all)$"
FORMAT_PATTERN = "^(json|html|linkset)$"
LANG_PATTERN = "^(en|zh)$"

Lot = Annotated[str | None, Query(alias="10", description="lot (GS1 AI 10)")]
Sig = Annotated[str | None, Query(alias="8030", description="the commissioning org's signature (GS1 AI 8030)")]
LinkType = Annotated[str | None, Query(alias="linkType", pattern=LINK_TYPE_PATTERN,
                                       description="`linkset` for the GS1 linkset")]
Format = Annotated[str | None, Query(alias="format", pattern=FORMAT_PATTERN,
                                     description="override content negotiation")]
Lang = Annotated[str | None, Query(pattern=LANG_PATTERN, description="page language (overrides Accept-Language)")]
Workshop = Annotated[str | None, Query(description="your workshop's org id, to learn whether it is authorized "
                                                   "(or send X-Workshop-Org)")]
Activity = Annotated[str, Query(pattern=ACTIVITY_PATTERN, description="the activity to authorize")]
CompressedSegment = Annotated[str, Path(description="a compressed Digital Link (base64url)",
                                        pattern="^[A-Za-z0-9_-]{10,512}$")]


def _documented_parameters() -> list[dict[str, Any]]:
    """The OpenAPI parameters FastAPI generates for the resolver's path and query (the declarations above)."""
    from fastapi import FastAPI

    def resolver(gtin: str, serial: str, lot: Lot = None, sig: Sig = None, link_type: LinkType = None,
                 fmt: Format = None, lang: Lang = None, workshop: Workshop = None,
                 activity: Activity = "install") -> None:
        """Never served: only documents the parameters of :func:`resolve`."""

    doc = FastAPI()
    doc.get("/01/{gtin}/21/{serial}")(resolver)
    parameters: list[dict[str, Any]] = doc.openapi()["paths"]["/01/{gtin}/21/{serial}"]["get"]["parameters"]
    return parameters


#: The resolver's query parameters, with the constraints declared above (FastAPI keeps the last of repeated ones).
_QUERY_RULES: tuple[tuple[str, re.Pattern[str] | None], ...] = (
    ("10", None), ("8030", None), ("linkType", re.compile(LINK_TYPE_PATTERN)), ("format", re.compile(FORMAT_PATTERN)),
    ("lang", re.compile(LANG_PATTERN)), ("workshop", None), ("activity", re.compile(ACTIVITY_PATTERN)),
)


def _resolver_query(request: Request) -> dict[str, str | None]:
    """The query of :func:`resolve`, validated as FastAPI validates the declared parameters (same 422 problem).

    The resolver is the hottest public path; reading seven optional strings
    here costs a fraction of FastAPI's per-parameter machinery.
    """
    params = request.query_params
    out: dict[str, str | None] = {}
    for name, pattern in _QUERY_RULES:
        value = params.get(name)
        if value is not None and pattern is not None and pattern.fullmatch(value) is None:
            raise RequestValidationError([{"type": "string_pattern_mismatch", "loc": ("query", name),
                                           "msg": f"String should match pattern '{pattern.pattern}'",
                                           "input": value}])
        out[name] = value
    return out


def _label_link(gtin: str, serial: str, lot: str | None, sig: str | None) -> PartLink:
    """The scanned label's identifiers, checked (a 4xx :class:`InvalidInput` naming the first bad one)."""
    if sig is not None:
        decode_part_sig(sig)
    return PartLink(gtin=check_gtin(gtin), serial=check_serial(serial),
                    lot=check_lot(lot) if lot is not None else None, sig=sig)


async def _resolve(request: Request, gtin: str, serial: str, lot: str | None, sig: str | None,
                   link_type: str | None, fmt: str | None, lang: str | None, workshop: str | None,
                   activity: str) -> Response:
    if link_type == "all":
        link_type = "linkset"
    link = _label_link(gtin, serial, lot, sig)
    return await _answer(request, link, link_type=link_type, fmt=fmt, lang=lang, workshop=workshop,
                         activity=activity)


#: The path of :func:`resolve` as Starlette matches it (``{gtin}``, then ``{serial:path}``).
_PLAIN_SCAN = re.compile(r"/01/([^/]+)/21/(.*)")
_LANE_QUERY = frozenset({"10", "8030", "format"})


class ScanFastLane:
    """ASGI middleware: answers the JSON verdict of a plain label scan before the framework routes it.

    The scan of a label is the hottest public path, and for a verdict that is
    not cached, routing, dependency solving and the middleware stack cost
    about a third of the scan. This lane answers only ``GET
    /01/{gtin}/21/{serial}`` asking for JSON (``Accept`` or ``?format=json``),
    with no query but the lot (``10``), the signature (``8030``) and
    ``format``, no workshop, and no root path; it checks the label exactly as
    :func:`resolve` does, takes the same rate-limit token and computes the
    verdict with the same :func:`_json_verdict`. Everything else, including
    every request it would answer with an error (a bad GTIN, an empty bucket, a
    database error), goes on to the app, which answers it as always.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            match = _PLAIN_SCAN.fullmatch(scope["path"])
            if match is not None:
                response = await _fast_lane_answer(Request(scope), match[1], match[2])
                if response is not None:
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def _fast_lane_answer(request: Request, gtin: str, serial: str) -> Response | None:
    """The response :func:`resolve` would give for a plain JSON scan, or ``None`` to leave it to the app."""
    query: dict[str, str] = {}
    raw_query = request.scope.get("query_string", b"")
    if raw_query:
        for name, value in parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True):
            if name not in _LANE_QUERY or name in query:
                return None
            query[name] = value
    fmt = query.get("format")
    if fmt not in (None, "json") or _wants(request, None, fmt) != "json" or "x-workshop-org" in request.headers:
        return None
    try:
        link = _label_link(gtin, serial, query.get("10"), query.get("8030"))
    except InvalidInput:
        return None
    if not take_scan_token(request):
        return None  # the app answers 429 (its own take finds the bucket as empty)
    try:
        return await _json_verdict(request, link, base=_resolver_base(request), workshop=None, activity="install",
                                   headers=dict(_VARY))
    except Exception:  # the app recomputes it and answers whatever it is, as always
        return None


@router.get("/01/{gtin}/21/{serial:path}", response_model=ScanVerdict, responses=_RESPONSES,
            openapi_extra={"parameters": _documented_parameters()},
            summary="Resolve a part's GS1 Digital Link: verdict (JSON), verification page (HTML) or linkset")
async def resolve(request: Request) -> Response:
    # The path and the query are read here, not declared: the resolver is the hottest public path, and
    # FastAPI's per-parameter machinery costs more than the checks _resolve makes of GTIN and serial anyway.
    await scan_rate_limit(request)
    q = _resolver_query(request)
    path = request.path_params
    return await _resolve(request, path["gtin"], path["serial"], q["10"], q["8030"], q["linkType"], q["format"],
                          q["lang"], q["workshop"], q["activity"] or "install")


@router.get("/01/{gtin}/10/{path_lot}/21/{serial:path}", response_model=ScanVerdict, responses=_RESPONSES,
            dependencies=[Depends(scan_rate_limit)],
            summary="The same, with the lot as a path qualifier (GS1 Digital Link 01/10/21 form)")
async def resolve_lot_path(request: Request, gtin: str, path_lot: str, serial: str, sig: Sig = None,
                           link_type: LinkType = None, fmt: Format = None, lang: Lang = None,
                           workshop: Workshop = None, activity: Activity = "install") -> Response:
    return await _resolve(request, gtin, serial, path_lot, sig, link_type, fmt, lang, workshop, activity)


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
