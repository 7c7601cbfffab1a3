"""The log's HTTP surface (SPEC §5.1): append, checkpoint, key, records, proofs."""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from api.body import read_json
from api.deps import api_settings, get_ledger
from api.problems import ledger_problem, problem_responses
from api.schemas import (
    BatchIn,
    BatchOut,
    ConsistencyProofOut,
    EntryIn,
    InclusionProofOut,
    LogKeyOut,
    ReceiptOut,
    RecordOut,
    RecordPage,
)
from ledger import merkle
from ledger.append_process import AppendProcess
from ledger.canonical import parse_json
from ledger.entries import parse_record, parse_signed_entry
from ledger.errors import InvalidInput, LimitExceeded, NotFound
from ledger.keys import b64encode
from ledger.log import BatchRejected

router = APIRouter(prefix="/v1", tags=["log"])


@router.post(
    "/entries",
    response_model=ReceiptOut,
    status_code=201,
    summary="Append one signed entry",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/EntryIn"}}}}},
    responses={200: {"model": ReceiptOut, "description": "Already in the log: the original receipt"},
               **problem_responses(400, 403, 404, 409, 413, 422, 503)},
)
async def post_entry(request: Request) -> Response:
    ledger = get_ledger(request)
    data = await read_json(request, api_settings(request).limits.max_body_bytes)
    signed = parse_signed_entry(data)
    appender: AppendProcess | None = request.app.state.appender
    if appender is not None:  # committed by the append process: its answer is the receipt's JSON
        receipt_json, duplicate = await appender.append(signed)
        return Response(receipt_json, status_code=200 if duplicate else 201, media_type="application/json")
    receipt = await asyncio.wrap_future(ledger.append_future(signed))
    return JSONResponse(receipt.to_json(), status_code=200 if receipt.duplicate else 201)


@router.post(
    "/entries/batch",
    response_model=BatchOut,
    status_code=201,
    summary="Append many signed entries in one transaction (all or nothing)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/BatchIn"}}}}},
    responses=problem_responses(400, 403, 404, 409, 413, 422),
)
async def post_batch(request: Request) -> Response:
    ledger = get_ledger(request)
    limits = api_settings(request).limits
    data = await read_json(request, limits.max_body_bytes)
    if not isinstance(data, dict) or set(data.keys()) != {"entries"} or not isinstance(data["entries"], list):
        raise InvalidInput('expected {"entries": [signed entry, ...]}', code="invalid_entry", field="entries")
    items = data["entries"]
    if not items:
        raise InvalidInput("entries: a batch needs at least one entry", code="invalid_entry", field="entries")
    if len(items) > limits.max_batch:
        raise LimitExceeded(f"a batch holds at most {limits.max_batch} entries, got {len(items)}",
                            code="batch_too_large", field="entries")
    parsed = []
    for index, item in enumerate(items):
        try:
            parsed.append(parse_signed_entry(item))
        except InvalidInput as exc:
            return _batch_problem(BatchRejected(index, exc), len(items))
    try:
        receipts = await run_in_threadpool(ledger.append_batch, parsed)
    except BatchRejected as exc:
        return _batch_problem(exc, len(items))
    return JSONResponse({"receipts": [r.to_json() for r in receipts]}, status_code=201)


def _batch_problem(exc: BatchRejected, count: int) -> Response:
    results: list[dict[str, Any]] = [
        {"index": i, "status": "not_appended"} for i in range(count)
    ]
    results[exc.index] = {"index": exc.index, "status": "rejected", "code": exc.error.code,
                          "detail": exc.error.message, "field": exc.error.field}
    return ledger_problem(exc, results=results)


@router.get("/log/checkpoint", response_class=PlainTextResponse, summary="The latest signed checkpoint",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "C2SP signed note"}, **problem_responses(404)})
def get_checkpoint(request: Request) -> Response:
    cp = get_ledger(request).latest_checkpoint()
    if cp is None:
        raise NotFound("the log is empty")
    return PlainTextResponse(cp.note, headers={"Cache-Control": "no-cache"})


@router.get("/log/key", response_model=LogKeyOut, summary="The log's public key (note verifier key)")
def get_key(request: Request) -> LogKeyOut:
    ledger = get_ledger(request)
    return LogKeyOut(origin=ledger.origin, verifier_key=ledger.verifier_key)


def _record_json(seq: int, raw: bytes, leaf: bytes, with_copy: bool = True) -> bytes:
    """One ``RecordOut`` as JSON bytes, the stored record bytes spliced in as its ``record``.

    The stored bytes are canonical JSON, so they are the decoded copy's JSON text as they are; they
    are parsed (strictly) only to be sure of that, and bytes that are not a JSON object take
    :func:`parse_record`'s error. Base64 and integers need no escaping. Without ``with_copy`` the
    copy is left out (and nothing is parsed): the bytes, base64, are the record.
    """
    head = (b'{"seq":', str(seq).encode("ascii"), b',"leaf_hash":"', base64.b64encode(leaf),
            b'","canonical":"', base64.b64encode(raw))
    if not with_copy:
        return b"".join((*head, b'"}'))
    try:
        decoded = parse_json(raw)
    except InvalidInput:
        decoded = None
    if not isinstance(decoded, dict):
        parse_record(raw)  # raises the error it always raised for such bytes
        raise InvalidInput("record: expected a JSON object", code="integrity")
    return b"".join((*head, b'","record":', raw, b"}"))


def _json_response(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


@router.get("/log/records", response_model=RecordPage, summary="Records in sequence order",
            responses=problem_responses(400, 422))
def get_records(request: Request, start: Annotated[int, Query(ge=0, le=2**53 - 1)] = 0,
                limit: Annotated[int, Query(ge=1)] = 100,
                decoded: Annotated[bool, Query(description="include each record decoded as `record`; "
                                                           "false sends only the exact bytes (`canonical`), "
                                                           "about half the page, for auditors who decode "
                                                           "and check them anyway")] = True) -> Response:
    max_page = api_settings(request).limits.max_page
    if limit > max_page:
        raise LimitExceeded(f"limit={limit} exceeds the page size limit of {max_page}", code="page_too_large",
                            field="limit")
    ledger = get_ledger(request)
    size = ledger.size()
    rows = [r for r in ledger.raw_records(start, limit) if r[0] < size]
    records = b",".join(_record_json(*row, decoded) for row in rows)
    next_start = rows[-1][0] + 1 if rows and rows[-1][0] + 1 < size else None
    return _json_response(b'{"records":[' + records + b'],"next_start":'
                          + (b"null" if next_start is None else str(next_start).encode("ascii")) + b"}")


@router.get("/log/records/{seq}", response_model=RecordOut, summary="One record, with its exact bytes",
            responses=problem_responses(404, 422))
def get_record(request: Request, seq: int) -> Response:
    ledger = get_ledger(request)
    if seq < 0 or seq >= ledger.size():
        raise NotFound(f"no record with seq {seq}", field="seq")
    rows = ledger.raw_records(seq, 1)
    if not rows or rows[0][0] != seq:
        raise NotFound(f"no record with seq {seq}", field="seq")
    return _json_response(_record_json(*rows[0]))


@router.get("/log/proof/inclusion", response_model=InclusionProofOut, summary="Inclusion proof (RFC 9162)",
            responses=problem_responses(404, 422))
def get_inclusion(request: Request, seq: Annotated[int, Query(ge=0, le=2**53 - 1)],
                  size: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None) -> InclusionProofOut:
    tree_size, leaf, proof = get_ledger(request).inclusion_proof(seq, size)
    return InclusionProofOut(seq=seq, tree_size=tree_size, leaf_hash=b64encode(leaf),
                             proof=merkle.encode_proof(proof))


@router.get("/log/proof/consistency", response_model=ConsistencyProofOut, summary="Consistency proof (RFC 9162)",
            responses=problem_responses(422))
def get_consistency(request: Request, from_: Annotated[int, Query(alias="from", ge=0, le=2**53 - 1)],
                    to: Annotated[int | None, Query(ge=0, le=2**53 - 1)] = None) -> ConsistencyProofOut:
    old, new, proof = get_ledger(request).consistency_proof(from_, to)
    return ConsistencyProofOut.model_validate({"from": old, "to": new, "proof": merkle.encode_proof(proof)})


__all__ = ["BatchIn", "EntryIn", "router"]
