"""Reading request bodies strictly and within limits."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ledger.canonical import parse_json
from ledger.errors import InvalidInput, LimitExceeded


async def read_json(request: Request, max_bytes: int) -> Any:
    """Read at most ``max_bytes`` of body and parse it as strict JSON (no duplicate keys, no NaN)."""
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
        raise InvalidInput("request body is empty; expected JSON", code="invalid_json")
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in {"application/json", "application/ld+json"} and not ctype.endswith("+json"):
        raise InvalidInput(f"content-type {ctype!r} is not JSON", code="invalid_json")
    return parse_json(raw)
