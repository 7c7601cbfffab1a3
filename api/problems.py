"""RFC 9457 problem details: the one place where errors become HTTP responses."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, get_args

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.append_process import AppendUnavailable
from ledger.errors import (
    Conflict,
    ErrorCode,
    IntegrityError,
    InvalidInput,
    LedgerError,
    LimitExceeded,
    NotFound,
    PolicyRejected,
    ProofError,
    SignatureError,
)
from ledger.log import BatchRejected

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:partsledger:problem:"

_STATUS_BY_CODE: dict[str, int] = {
    "body_too_large": 413,
    "batch_too_large": 413,
    "page_too_large": 400,
    "rate_limited": 429,
}

#: Codes of errors raised by the HTTP layer itself (routing, body size, rate limit), by status.
_CODE_BY_HTTP_STATUS: dict[int, ErrorCode] = {
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    429: "rate_limited",
}

_CLIENT_ONLY = {"unreachable", "server_error", "wrong_passphrase"}  # raised by clients, never served
CODE_DESCRIPTION = (
    "Stable, machine-readable error code (the `ledger.errors.ErrorCode` list): "
    + ", ".join(f"`{c}`" for c in get_args(ErrorCode) if c not in _CLIENT_ONLY)
    + ". Request validation answers 422 `invalid_field`; an unknown path 404 `not_found`; a method the "
    "path does not serve 405 `method_not_allowed` (with an `Allow` header)."
)


class Problem(BaseModel):
    """An RFC 9457 problem document. ``code`` is stable and machine-readable."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description=CODE_DESCRIPTION)
    field: str | None = None


def status_for(exc: LedgerError) -> int:
    if isinstance(exc, BatchRejected):  # a batch fails with the status of the entry that sank it
        return status_for(exc.error)
    if exc.code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[exc.code]
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, (SignatureError, PolicyRejected)):
        return 403
    if isinstance(exc, LimitExceeded):
        return 413
    if isinstance(exc, (InvalidInput, ProofError)):
        return 400 if exc.code in {"invalid_json"} else 422
    if isinstance(exc, IntegrityError):
        return 500
    return 400


def problem_response(status: int, code: str, detail: str, *, field: str | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def ledger_problem(exc: LedgerError, **extra: Any) -> JSONResponse:
    details = {k: v for k, v in exc.details.items() if k not in {"type", "title", "status", "detail", "code"}}
    details.update(extra)
    headers = None
    if exc.code == "rate_limited" and "retry_after" in exc.details:
        headers = {"Retry-After": str(exc.details["retry_after"])}
    return problem_response(status_for(exc), exc.code, exc.message, field=exc.field, headers=headers, **details)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def _ledger_error(_request: Request, exc: LedgerError) -> JSONResponse:
        return ledger_problem(exc)

    @app.exception_handler(AppendUnavailable)
    async def _append_unavailable(_request: Request, exc: AppendUnavailable) -> JSONResponse:
        # The writer process ended (it is started again for the next entry). Retrying is safe: an entry
        # that was appended after all is answered with its original receipt.
        return problem_response(503, "server_error", f"{exc}; retry the request", headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        location = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        message = first.get("msg", "invalid request")
        return problem_response(422, "invalid_field", f"{location or 'request'}: {message}", field=location or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODE_BY_HTTP_STATUS.get(exc.status_code, "invalid_field")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(exc.status_code, code, detail, headers=getattr(exc, "headers", None))


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given problem statuses."""
    return {
        status: {"model": Problem, "description": HTTPStatus(status).phrase,
                 "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        for status in statuses
    }
