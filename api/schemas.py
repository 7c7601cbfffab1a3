"""Request and response models of the log API (they shape the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class FlagOut(BaseModel):
    kind: str
    subject: str
    message: str
    org_id: str | None = None


class ReceiptOut(BaseModel):
    """Evidence that an entry is in the log: a signed checkpoint and an inclusion proof against it."""

    seq: int
    entry_id: str = Field(description="hex SHA-256 of the entry's canonical bytes")
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || canonical record bytes)")
    tree_size: int
    checkpoint: str = Field(description="C2SP signed note whose body is a tlog-checkpoint")
    inclusion_proof: list[str] = Field(description="base64 hashes, RFC 9162 order")
    duplicate: bool = Field(description="true if this exact entry was already in the log")
    flags: list[FlagOut]


class EntryIn(BaseModel):
    """A signed entry (see docs/formats.md)."""

    entry: dict[str, Any]
    sig: str


class BatchIn(BaseModel):
    entries: list[EntryIn]


class BatchOut(BaseModel):
    receipts: list[ReceiptOut]


class LogKeyOut(BaseModel):
    origin: str
    verifier_key: str = Field(description="C2SP note verifier key: <name>+<hex key hash>+<base64(0x01||pubkey)>")
    algorithm: str = "ed25519"


class RecordOut(BaseModel):
    seq: int
    leaf_hash: str
    canonical: str = Field(description="the exact stored canonical record bytes, base64")
    record: dict[str, Any] | None = Field(
        default=None, description="the same record decoded, for convenience (left out of a records page asked for "
                                  "with decoded=false)")


class RecordPage(BaseModel):
    records: list[RecordOut]
    next_start: int | None


class InclusionProofOut(BaseModel):
    seq: int
    tree_size: int
    leaf_hash: str
    proof: list[str]


class ConsistencyProofOut(BaseModel):
    from_size: int = Field(alias="from")
    to_size: int = Field(alias="to")
    proof: list[str]

    model_config = {"populate_by_name": True}
