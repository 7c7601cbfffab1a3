"""Errors a client raises on top of :mod:`ledger.errors` — still one tree.

    LedgerError
    ├── InvalidInput, SignatureError, PolicyRejected, NotFound, Conflict, LimitExceeded
    │       the server's RFC 9457 problem, re-raised client-side with the server's ``code``
    ├── ProofError                   a proof or checkpoint the server sent does not verify
    ├── IntegrityError
    │   ├── LogForked                two signed checkpoints that cannot both be true (``evidence``)
    │   └── LogShrunk                the log's head is smaller than one already seen (``evidence``)
    ├── ServerUnreachable            no HTTP answer at all (connection refused, timeout)
    └── ServerError                  an answer that is not the documented API (5xx, non-JSON ...)

``LogForked`` and ``LogShrunk`` carry both signed checkpoint notes verbatim:
each is signed by the log, so the pair is portable proof of misbehaviour that
anyone holding the log's public key can check.
"""

from __future__ import annotations

from typing import Any, cast, get_args

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


class _Evidence(IntegrityError):
    """Misbehaviour shown by two signed checkpoints: ``remembered`` (held before) and ``offered`` (just served)."""

    def __init__(self, message: str, *, remembered: str, offered: str, code: ErrorCode,
                 proof: list[str] | None = None) -> None:
        super().__init__(message, code=code)
        self.remembered = remembered
        self.offered = offered
        self.proof = proof
        self.details.update({"remembered_checkpoint": remembered, "offered_checkpoint": offered})
        if proof is not None:
            self.details["consistency_proof"] = proof

    @property
    def evidence(self) -> tuple[str, str]:
        """The two signed checkpoint notes, remembered first."""
        return self.remembered, self.offered


class LogForked(_Evidence):
    """Two checkpoints signed by the log that cannot lie on one append-only history."""

    def __init__(self, message: str, *, remembered: str, offered: str, proof: list[str] | None = None) -> None:
        super().__init__(message, remembered=remembered, offered=offered, code="log_forked", proof=proof)


class LogShrunk(_Evidence):
    """The log now claims fewer records than a checkpoint it signed earlier."""

    def __init__(self, message: str, *, remembered: str, offered: str) -> None:
        super().__init__(message, remembered=remembered, offered=offered, code="log_shrunk")


class ServerUnreachable(LedgerError):
    """The server gave no HTTP answer (refused, reset, timed out)."""

    code: ErrorCode = "unreachable"


class ServerError(LedgerError):
    """The server answered, but not with the documented API (a 5xx, a non-JSON body, a wrong shape)."""

    code: ErrorCode = "server_error"


_BY_CODE: dict[str, type[LedgerError]] = {
    "bad_signature": SignatureError,
    "unknown_key": SignatureError,
    "revoked_key": SignatureError,
    "bad_part_sig": SignatureError,
    "unknown_org": SignatureError,
    "not_found": NotFound,
    "conflict": Conflict,
    "duplicate_serial": PolicyRejected,
    "duplicate_claim": PolicyRejected,
    "body_too_large": LimitExceeded,
    "batch_too_large": LimitExceeded,
    "page_too_large": LimitExceeded,
    "rate_limited": LimitExceeded,
    "bad_proof": ProofError,
    "bad_checkpoint": ProofError,
    "bad_note": ProofError,
}


def from_problem(status: int, problem: dict[str, Any]) -> LedgerError:
    """Rebuild the server's error from an RFC 9457 problem document, keeping its stable code."""
    code = str(problem.get("code") or "")
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    field = problem.get("field") if isinstance(problem.get("field"), str) else None
    extra = {k: v for k, v in problem.items() if k not in {"type", "title", "status", "detail", "code", "field"}}
    if status >= 500:
        return ServerError(f"server error {status}: {detail}", details={"code": code, **extra})
    cls = _BY_CODE.get(code)
    if cls is None:
        if status == 404:
            cls = NotFound
        elif status == 409:
            cls = Conflict
        elif status == 403:
            cls = PolicyRejected
        elif status in (413, 429):
            cls = LimitExceeded
        else:
            cls = InvalidInput
    known = cast(ErrorCode, code) if code in get_args(ErrorCode) else None
    return cls(detail, code=known, field=field, details={"server_code": code, "status": status, **extra})


__all__ = ["LogForked", "LogShrunk", "ServerError", "ServerUnreachable", "from_problem"]
