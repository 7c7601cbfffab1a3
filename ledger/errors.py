"""The one exception tree of partsledger.

Every error a caller can provoke carries a stable, machine-readable ``code``
(see :data:`ErrorCode`) and a one-line human ``message`` that names the rule,
the field and, where useful, what would have been accepted.

    LedgerError                      root; never raised directly
    ├── InvalidInput                 malformed data: bad JSON shape, bad base64, bad GTIN ...
    ├── SignatureError               a signature does not verify, or the key is unknown/revoked
    ├── PolicyRejected               well-formed and signed, but the policy forbids it
    ├── NotFound                     an identifier that names nothing
    ├── Conflict                     a write that collides with what is already stored
    ├── ProofError                   a Merkle proof, checkpoint or note that does not verify
    ├── IntegrityError               stored history is inconsistent (tamper, fork, gap)
    └── LimitExceeded                a size or rate limit was hit

The API maps the tree to RFC 9457 problem details in one place
(``api/problems.py``); the CLI maps it to a one-line message and an exit
code in one place (``clients/cli.py``).
"""

from __future__ import annotations

from typing import Any, Literal

ErrorCode = Literal[
    # input shape
    "invalid_json",
    "invalid_entry",
    "invalid_body",
    "invalid_field",
    "invalid_gtin",
    "invalid_serial",
    "invalid_uri",
    "invalid_time",
    "wrong_origin",
    "unsupported_version",
    # signatures and keys
    "bad_signature",
    "bad_part_sig",
    "unknown_key",
    "revoked_key",
    "unknown_org",
    # policy
    "policy_rejected",
    "not_authorized",
    "role_forbidden",
    "prefix_not_granted",
    "duplicate_serial",
    "clock_skew",
    "invalid_state",
    "duplicate_claim",
    "unknown_part",
    "unknown_grant",
    "unknown_claim",
    "unknown_recall",
    "unknown_entry",
    "not_custodian",
    "part_recalled",
    "invalid_period",
    # lookups and conflicts
    "not_found",
    "conflict",
    # proofs and integrity
    "bad_proof",
    "bad_checkpoint",
    "bad_note",
    "integrity",
    "log_shrunk",
    "log_forked",
    # limits
    "body_too_large",
    "batch_too_large",
    "page_too_large",
    "rate_limited",
    # HTTP transport
    "method_not_allowed",
    # EPCIS capture
    "invalid_epcis",
    "epcis_unavailable",
    # clients talking to a server
    "unreachable",
    "server_error",
    "wrong_passphrase",
]


class LedgerError(Exception):
    """Root of every partsledger error. ``code`` is stable; ``message`` is for people."""

    code: ErrorCode = "invalid_entry"

    def __init__(self, message: str, *, code: ErrorCode | None = None, field: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        return self.message


class InvalidInput(LedgerError):
    """Input that is malformed: wrong shape, type, encoding or value range."""

    code: ErrorCode = "invalid_entry"


class SignatureError(LedgerError):
    """A signature that does not verify, or a key that is unknown or revoked."""

    code: ErrorCode = "bad_signature"


class PolicyRejected(LedgerError):
    """A signed, well-formed entry that the policy does not allow."""

    code: ErrorCode = "policy_rejected"


class NotFound(LedgerError):
    """An identifier that names nothing stored."""

    code: ErrorCode = "not_found"


class Conflict(LedgerError):
    """A write that collides with something already stored."""

    code: ErrorCode = "conflict"


class ProofError(LedgerError):
    """A Merkle proof, checkpoint or signed note that does not verify."""

    code: ErrorCode = "bad_proof"


class IntegrityError(LedgerError):
    """Stored history that is inconsistent: edited, reordered, truncated or forked.

    ``seq`` names the first bad sequence number when one is known.
    """

    code: ErrorCode = "integrity"

    def __init__(self, message: str, *, seq: int | None = None, code: ErrorCode | None = None) -> None:
        super().__init__(message, code=code, details={"seq": seq} if seq is not None else None)
        self.seq = seq


class LimitExceeded(LedgerError):
    """A size, count or rate limit was exceeded."""

    code: ErrorCode = "body_too_large"


__all__ = [
    "Conflict",
    "ErrorCode",
    "IntegrityError",
    "InvalidInput",
    "LedgerError",
    "LimitExceeded",
    "NotFound",
    "PolicyRejected",
    "ProofError",
    "SignatureError",
]
