"""GS1 EPCIS 2.0 over HTTP (SPEC §7): the REST query subset, single events, and capture.

* ``GET /v1/epcis/events`` answers an ``EPCISQueryDocument`` filtered by the
  query parameters that fit partsledger (``EQ_bizStep``, ``EQ_disposition``,
  ``EQ_persistentDisposition_set``, ``MATCH_anyEPC``, ``MATCH_parentID``,
  ``GE_eventTime``/``LT_eventTime``, ``EXISTS_errorDeclaration``), paged with
  ``perPage`` and an opaque ``nextPageToken`` that the ``Link: <...>; rel="next"``
  header carries.
* ``GET /v1/epcis/events/{eventID}`` one event by its CBV 2.0 hash id.
* ``POST /v1/epcis/capture`` an EPCISDocument whose events carry their actors'
  signatures (docs/epcis.md); all or nothing; 201 with one receipt per event.

The events come from an :class:`~ledger.epcis.export.EventIndex` kept per app
and extended with new records on each request, so queries do not re-read the log.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api.deps import api_settings, get_ledger
from api.problems import problem_response, problem_responses, status_for
from ledger.canonical import canonical_bytes, parse_json
from ledger.epcis import vocab
from ledger.epcis.capture import CaptureRejected, capture_document
from ledger.epcis.event_hash import context_prefixes, event_hash, normalise_digital_link
from ledger.epcis.export import EventIndex, IndexedEvent, query_document
from ledger.epcis.validate import SchemaUnavailable, cached_validator, default_schema_path
from ledger.errors import InvalidInput, LimitExceeded, NotFound
from ledger.keys import b64url_decode, b64url_encode
from ledger.log import Ledger

router = APIRouter(prefix="/v1/epcis", tags=["epcis"])
_INDEX_LOCK = threading.Lock()
CBV = "https://ref.gs1.org/cbv/"
DEFAULT_PER_PAGE = 30


def _resolver(request: Request) -> str:
    return api_settings(request).resolver_base or vocab.GS1_RESOLVER


def current_index(request: Request) -> EventIndex:
    """The app's event index, brought up to the ledger's current size."""
    ledger: Ledger = get_ledger(request)
    with _INDEX_LOCK:
        index: EventIndex | None = getattr(request.app.state, "epcis_index", None)
        if index is None or index.resolver != _resolver(request):
            index = EventIndex(resolver=_resolver(request))
            request.app.state.epcis_index = index
    with index.lock:
        size = ledger.size()
        while index.size < size:
            rows = [r for r in ledger.raw_records(index.size, 1000) if r[0] < size]
            if not rows:
                break
            index.feed_raw(rows)
    return index


# --- query -----------------------------------------------------------------------------------------------
def _values(raw: list[str] | None) -> set[str]:
    return {v for item in raw or [] for v in item.split("|") if v}


def _bare(value: str, vocabulary: str) -> str:
    """``https://ref.gs1.org/cbv/BizStep-shipping`` and ``urn:epcglobal:cbv:bizstep:shipping`` → ``shipping``."""
    for prefix in (f"{CBV}{vocabulary}-", f"urn:epcglobal:cbv:{vocabulary.lower()}:"):
        if value.startswith(prefix):
            return value[len(prefix):]
    if value.startswith(vocab.NAMESPACE):  # our extension steps, expanded
        return vocab.ext(value[len(vocab.NAMESPACE):])
    return value


def _epc_key(uri: str) -> str:
    return normalise_digital_link(uri) or uri


def _epc_matches(candidates: list[str], wanted: set[str]) -> bool:
    keys = {_epc_key(c) for c in candidates}
    for want in wanted:
        key = _epc_key(want)
        if key in keys:
            return True
        parsed = vocab.parse_class_uri(key)
        if parsed is not None and parsed[1] is None:  # a GTIN matches each of its instances and lots
            prefix = key + "/"
            if any(k.startswith(prefix) for k in keys):
                return True
    return False


def _time(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name}: expected an RFC 3339 time such as 2026-11-28T12:00:00Z", code="invalid_time",
                           field=name) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{name}: the time needs a zone (Z or ±hh:mm)", code="invalid_time", field=name)
    return moment


def _any_epcs(event: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
        out += [str(v) for v in event.get(key, [])]
    out += [str(q.get("epcClass", "")) for q in event.get("quantityList", [])]
    if "parentID" in event:
        out.append(str(event["parentID"]))
    return out


class _Filter:
    def __init__(self, params: dict[str, Any]) -> None:
        self.biz_steps = {_bare(v, "BizStep") for v in _values(params["EQ_bizStep"])}
        self.dispositions = {_bare(v, "Disp") for v in _values(params["EQ_disposition"])}
        self.persistent = {_bare(v, "Disp") for v in _values(params["EQ_persistentDisposition_set"])}
        self.any_epc = _values(params["MATCH_anyEPC"])
        self.parent = _values(params["MATCH_parentID"])
        self.ge = _time(params["GE_eventTime"], "GE_eventTime") if params["GE_eventTime"] else None
        self.lt = _time(params["LT_eventTime"], "LT_eventTime") if params["LT_eventTime"] else None
        exists = params["EXISTS_errorDeclaration"]
        self.error = None if exists is None else exists.lower() not in ("false", "0")

    def __call__(self, event: dict[str, Any]) -> bool:
        if self.biz_steps and _bare(str(event.get("bizStep", "")), "BizStep") not in self.biz_steps:
            return False
        if self.dispositions and _bare(str(event.get("disposition", "")), "Disp") not in self.dispositions:
            return False
        if self.persistent:
            given = {_bare(str(v), "Disp") for v in event.get("persistentDisposition", {}).get("set", [])}
            if not given & self.persistent:
                return False
        if self.any_epc and not _epc_matches(_any_epcs(event), self.any_epc):
            return False
        if self.parent and not ("parentID" in event and _epc_matches([str(event["parentID"])], self.parent)):
            return False
        if self.ge or self.lt:
            moment = _time(str(event["eventTime"]), "eventTime")
            if (self.ge and moment < self.ge) or (self.lt and moment >= self.lt):
                return False
        return not (self.error is not None and ("errorDeclaration" in event) != self.error)


def _token(seq: int, fingerprint: str) -> str:
    return b64url_encode(f"{seq}:{fingerprint}".encode())


def _untoken(token: str, fingerprint: str) -> int:
    try:
        seq_text, _, print_ = b64url_decode(token, field="nextPageToken").decode().partition(":")
        seq = int(seq_text)
    except (InvalidInput, UnicodeDecodeError, ValueError):
        raise InvalidInput("nextPageToken: not a token this server issued", code="invalid_field",
                           field="nextPageToken") from None
    if print_ != fingerprint or seq < 0:
        raise InvalidInput("nextPageToken: issued for a different query; repeat the same parameters",
                           code="invalid_field", field="nextPageToken")
    return seq


QueryList = Annotated[list[str] | None, Query()]


@router.get("/events", summary="EPCIS 2.0 events (query subset), as an EPCISQueryDocument",
            responses={200: {"description": "EPCISQueryDocument; a Link header with rel=next when more pages exist"},
                       **problem_responses(400, 422)})
def get_events(
    request: Request,
    EQ_bizStep: QueryList = None,
    EQ_disposition: QueryList = None,
    EQ_persistentDisposition_set: QueryList = None,
    MATCH_anyEPC: QueryList = None,
    MATCH_parentID: QueryList = None,
    GE_eventTime: Annotated[str | None, Query()] = None,
    LT_eventTime: Annotated[str | None, Query()] = None,
    EXISTS_errorDeclaration: Annotated[str | None, Query()] = None,
    perPage: Annotated[int, Query(ge=1)] = DEFAULT_PER_PAGE,
    nextPageToken: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    params = {"EQ_bizStep": EQ_bizStep, "EQ_disposition": EQ_disposition,
                  "EQ_persistentDisposition_set": EQ_persistentDisposition_set, "MATCH_anyEPC": MATCH_anyEPC,
                  "MATCH_parentID": MATCH_parentID, "GE_eventTime": GE_eventTime, "LT_eventTime": LT_eventTime,
                  "EXISTS_errorDeclaration": EXISTS_errorDeclaration}
    max_page = api_settings(request).limits.max_page
    if perPage > max_page:
        raise LimitExceeded(f"perPage={perPage} exceeds the page size limit of {max_page}", code="page_too_large",
                            field="perPage")
    matches = _Filter(params)
    fingerprint = hashlib.sha256(canonical_bytes({k: sorted(v) if isinstance(v, list) else v
                                                  for k, v in params.items()})).hexdigest()[:16]
    start = _untoken(nextPageToken, fingerprint) if nextPageToken else 0
    index = current_index(request)
    page: list[IndexedEvent] = []
    more: IndexedEvent | None = None
    for item in index.events:
        if item.seq < start or not matches(item.event):
            continue
        if len(page) == perPage:
            more = item
            break
        page.append(item)
    headers = {}
    if more is not None:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "nextPageToken"]
        query.append(("nextPageToken", _token(more.seq, fingerprint)))
        url = str(request.url.replace(query=urlencode(query)))
        headers["Link"] = f'<{url}>; rel="next"'
    return JSONResponse(query_document([i.event for i in page]), headers=headers)


@router.get("/events/{event_id:path}", summary="One EPCIS event by its eventID (CBV 2.0 hash, URL-encoded)",
            responses={200: {"description": "The event with its @context"}, **problem_responses(404)})
def get_event(request: Request, event_id: str) -> Response:
    item = current_index(request).by_event_id.get(event_id)
    if item is None:
        raise NotFound(f"no EPCIS event with eventID {event_id!r}", field="eventID")
    return JSONResponse({"@context": list(vocab.DOCUMENT_CONTEXT), **item.event})


class JsonLdResponse(JSONResponse):
    media_type = "application/ld+json"


@router.get("/context.jsonld", summary="The JSON-LD context of partsledger's EPCIS extension namespace",
            response_class=JsonLdResponse,
            responses={200: {"description": "A JSON-LD context document",
                             "content": {"application/ld+json": {"schema": {"type": "object"}}}}})
def get_context() -> Response:
    return JsonLdResponse(vocab.EXTENSION_CONTEXT)


# --- capture ---------------------------------------------------------------------------------------------
async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The raw request body within the size limit (floats are allowed in EPCIS, so not ``read_json``)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise LimitExceeded(f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes",
                            code="body_too_large")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise LimitExceeded(f"request body exceeds the limit of {max_bytes} bytes", code="body_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise InvalidInput("request body is empty; expected an EPCISDocument (JSON-LD)", code="invalid_json")
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in {"application/json", "application/ld+json"} and not ctype.endswith("+json"):
        raise InvalidInput(f"content-type {ctype!r} is not JSON", code="invalid_json")
    return raw


@router.post(
    "/capture",
    status_code=201,
    summary="Capture an EPCISDocument whose events carry their actors' signatures (all or nothing)",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/ld+json": {"schema": {"type": "object"}}, "application/json": {"schema": {"type": "object"}}}}},
    responses={201: {"description": "Every event appended (or already present); one receipt per event"},
               **problem_responses(400, 403, 404, 409, 413, 422, 503)},
)
async def post_capture(request: Request) -> Response:
    ledger = get_ledger(request)
    settings = api_settings(request)
    raw = await _read_body(request, settings.limits.max_body_bytes)
    document = parse_json(raw, allow_floats=True)  # EPCIS sensor values are decimals
    try:
        validator = cached_validator(str(default_schema_path()))
    except SchemaUnavailable as exc:
        return problem_response(503, "epcis_unavailable", f"EPCIS capture is unavailable: {exc}")
    try:
        receipts = await run_in_threadpool(capture_document, ledger, document, validator=validator,
                                           resolver=_resolver(request), max_events=settings.limits.max_batch)
    except CaptureRejected as exc:
        status = status_for(exc.cause) if exc.cause is not None else (413 if exc.code == "batch_too_large" else 422)
        return problem_response(status, exc.code, exc.message, field=exc.field, errors=exc.details["errors"])
    events = document["epcisBody"]["eventList"]
    prefixes = context_prefixes(document["@context"])
    return JSONResponse(status_code=201, content={
        "captureID": hashlib.sha256(raw).hexdigest(),
        "events": [{"index": i, "eventID": event_hash(e, prefixes), "seq": r.seq, "entry_id": r.entry_id,
                    "duplicate": r.duplicate} for i, (e, r) in enumerate(zip(events, receipts, strict=True))],
        "receipts": [r.to_json() for r in receipts],
    })


__all__ = ["router"]
