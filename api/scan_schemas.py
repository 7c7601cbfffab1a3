"""Response models of the scan resolver and the read API (they shape the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

VerdictName = Literal["genuine", "unknown", "suspect", "recalled", "retired"]


class ReasonOut(BaseModel):
    code: str = Field(description="stable reason code, see docs/scan.md")
    severity: Literal["info", "warning", "critical"]
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class PartRef(BaseModel):
    gtin: str = Field(description="GTIN-14")
    serial: str = Field(description="GS1 AI 21 serial")
    lot: str | None = Field(default=None, description="lot recorded at commissioning (AI 10)")
    label_lot: str | None = Field(default=None, description="lot printed on the scanned label, if any")
    uri: str = Field(description="the part's uncompressed GS1 Digital Link URI, as printed on its label")


class OrgRef(BaseModel):
    org_id: str
    name: str
    kind: str
    country: str | None = None


class SignatureOut(BaseModel):
    status: Literal["valid", "invalid", "missing", "unknown_key", "not_checked"]
    signed_by: str | None = Field(default=None, description="org whose key verified the AI 8030 signature")


class HistoryEventOut(BaseModel):
    seq: int = Field(description="the record's sequence number; fetch it at /v1/log/records/{seq}")
    type: str
    org: str = Field(description="the org that signed the entry")
    logged: str = Field(description="the log's time of the record (RFC 3339 UTC)")
    state_after: str
    authorization: str | None = Field(default=None, description="for workshop acts: the authorization judged then")
    grant_id: str | None = None


class FlagOut(BaseModel):
    kind: str
    message: str
    seq: int
    org_id: str | None = None


class RecallOut(BaseModel):
    campaign_id: str
    reason: str | None = None
    seq: int | None = None


class AuthorizationOut(BaseModel):
    workshop: str
    activity: str
    authorized: bool
    grant_id: str | None
    status: Literal["authorized", "independent", "suspended", "revoked", "expired", "out_of_scope", "unknown_org",
                    "unknown_part"]
    message: str


class WarrantyOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str = Field(description="none | open_claims | claimed (summary of the part's claims)")
    claims: list[dict[str, Any]] = Field(default_factory=list)


class ProofOut(BaseModel):
    """Inclusion of the part's latest record in the tree of the signed checkpoint beside it."""

    seq: int
    tree_size: int
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || record)")
    record: str = Field(description="the exact canonical record bytes, base64; hash them yourself")
    inclusion_proof: list[str] = Field(description="base64 hashes, RFC 9162 order")
    checkpoint: str = Field(description="C2SP signed note; verify with the key from /v1/log/key")


class ScanVerdict(BaseModel):
    """What a scan of a part's QR code tells a technician, and the evidence behind it."""

    verdict: VerdictName
    reasons: list[ReasonOut]
    part: PartRef
    signature: SignatureOut
    commissioned_by: OrgRef | None
    state: str | None = Field(description="lifecycle state, see docs/scan.md; null for unknown parts")
    custodian: str | None = Field(default=None, description="org currently holding the part")
    installation: dict[str, Any] | None = Field(default=None, description="current installation, if installed")
    history: list[HistoryEventOut]
    warranty: WarrantyOut
    open_flags: list[FlagOut]
    recalls: list[RecallOut]
    authorization: AuthorizationOut | None = Field(
        default=None, description="present when the caller names its workshop (?workshop= or X-Workshop-Org)")
    proof: ProofOut | None
    checked_at: str


class Link(BaseModel):
    href: str
    title: str | None = None
    type: str | None = None
    hreflang: list[str] | None = None


class LinksetOut(BaseModel):
    """RFC 9264 linkset in the shape GS1 resolvers use (GS1 Digital Link resolver standard §7)."""

    linkset: list[dict[str, Any]]


class Page(BaseModel):
    """Common paging envelope: pass ``next_offset`` back as ``offset`` for the next page."""

    items: list[dict[str, Any]]
    next_offset: int | None




class KeyOut(BaseModel):
    kid: str
    public_key: str = Field(description="base64 Ed25519 public key")
    added_seq: int
    revoked_seq: int | None
    compromised_at: str | None


class OrgOut(BaseModel):
    org_id: str
    kind: str
    name: str
    country: str | None
    gs1_prefixes: list[str]
    glns: list[str]
    registered_seq: int
    keys: list[KeyOut] | None = Field(default=None, description="present on /v1/orgs/{id}")


class OrgPage(BaseModel):
    items: list[OrgOut]
    next_offset: int | None


class TrustBundleOut(BaseModel):
    """The signed offline trust bundle; see docs/scan.md for the inner format and how to verify it."""

    bundle: dict[str, Any]
    signature: str = Field(description="base64 Ed25519 signature by the log key over "
                                       "'partsledger/v1/trust-bundle\\n' || JCS(bundle)")
    verifier_key: str = Field(description="the log's note verifier key (a hint; pin the key you trust)")


class PartDetailOut(BaseModel):
    part: dict[str, Any] = Field(description="the part's current projection (state, custodian, vehicle, ...)")
    history: list[HistoryEventOut]
    flags: list[dict[str, Any]] = Field(description="every flag on the part, with `open`")
    recalls: list[dict[str, Any]] = Field(description="open recall campaigns covering the part")
    installations: list[dict[str, Any]]
    claims: list[dict[str, Any]]


class RecallAffectedOut(BaseModel):
    recall: dict[str, Any]
    items: list[dict[str, Any]]
    next_offset: int | None


__all__ = [
    "AuthorizationOut",
    "FlagOut",
    "HistoryEventOut",
    "KeyOut",
    "LinksetOut",
    "OrgOut",
    "OrgPage",
    "OrgRef",
    "Page",
    "PartDetailOut",
    "PartRef",
    "ProofOut",
    "ReasonOut",
    "RecallAffectedOut",
    "RecallOut",
    "ScanVerdict",
    "SignatureOut",
    "TrustBundleOut",
    "VerdictName",
    "WarrantyOut",
]
