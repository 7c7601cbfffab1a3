"""From the domain's projections to what a scan and a trust bundle need.

This is the one adapter between the domain's query module and the scan
path: it reduces parts, flags, recalls and grants to the plain facts of
:mod:`ledger.verdict`, assembles the full verdict document (with the
inclusion proof of the part's latest record against a signed checkpoint),
and exports grants and recalls in the bundle form of :mod:`ledger.trust_bundle`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger import directory, merkle
from ledger.digital_link import PartLink, build_uri, verify_part_sig
from ledger.errors import SignatureError
from ledger.keys import b64decode, b64encode
from ledger.log import Ledger
from ledger.verdict import (
    Authorization,
    FlagFact,
    PartFacts,
    RecallFact,
    SigStatus,
    gtin_matches_prefix,
    judge,
)


@dataclass
class PartView:
    """The domain's view of one part, as far as a scan needs it."""

    facts: PartFacts
    latest_seq: int
    custodian: str | None = None
    installation: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    part_sig: str | None = None  # the AI 8030 value recorded at commissioning, if any


def part_view(ledger: Ledger, gtin: str, serial: str) -> PartView | None:
    """The part's facts from the domain projections, or ``None`` if it was never commissioned."""
    return None


def bundle_grants(ledger: Ledger) -> list[dict[str, Any]]:
    """Every workshop and commission grant, in trust-bundle form."""
    return []


def bundle_recalls(ledger: Ledger) -> list[dict[str, Any]]:
    """Every open recall campaign, in trust-bundle form."""
    return []


def workshop_authorization(ledger: Ledger, workshop: str, gtin: str, activity: str) -> Authorization:
    """The domain's authorization decision for ``workshop`` right now (as of the log's head)."""
    if directory.org_summary(ledger, workshop) is None:
        return Authorization(workshop, activity, False, None, "unknown_org", f"{workshop} is not a registered org")
    return Authorization(workshop, activity, False, None, "independent",
                         f"{workshop} holds no grant: it may work as an independent workshop, unauthorized by the "
                         "brand")


def _signature(ledger: Ledger, link: PartLink, view: PartView | None) -> tuple[SigStatus, str | None]:
    if link.sig is None:
        return "missing", None
    if view is not None:
        candidates = [view.facts.commissioned_by]
    else:
        candidates = [o["org_id"] for o in directory.all_orgs_with_keys(ledger)
                      if any(gtin_matches_prefix(link.gtin, p) for p in o["gs1_prefixes"])]
        if not candidates:
            return "unknown_key", None
    for org_id in candidates:
        try:
            org = directory.get_org(ledger, org_id)
        except Exception:  # noqa: S112 — an org that vanished is simply not a candidate
            continue
        for key in org["keys"]:
            try:
                verify_part_sig(b64decode(key["public_key"], field="public_key", size=32), link.gtin, link.serial,
                                link.sig)
            except SignatureError:
                continue
            return "valid", org_id
    return "invalid", None


def _proof(ledger: Ledger, seq: int) -> dict[str, Any] | None:
    checkpoint = ledger.latest_checkpoint()
    if checkpoint is None or seq >= checkpoint.size:
        return None
    tree_size, leaf, proof = ledger.inclusion_proof(seq, checkpoint.size)
    raw = ledger.raw_records(seq, 1)[0][1]
    return {"seq": seq, "tree_size": tree_size, "leaf_hash": b64encode(leaf), "record": b64encode(raw),
            "inclusion_proof": merkle.encode_proof(proof), "checkpoint": checkpoint.note}


def _warranty(claims: list[dict[str, Any]]) -> dict[str, Any]:
    if not claims:
        return {"status": "none", "claims": []}
    open_states = {"filed", "open", "held", "pending", "submitted"}
    status = "open_claims" if any(str(c.get("status", "")) in open_states for c in claims) else "claimed"
    return {"status": status, "claims": claims}


def resolve_scan(ledger: Ledger, link: PartLink, *, resolver_base: str, now: str, workshop: str | None = None,
                 activity: str = "install") -> dict[str, Any]:
    """The verdict document for a scanned Digital Link (see ``api.scan_schemas.ScanVerdict``)."""
    view = part_view(ledger, link.gtin, link.serial)
    sig, signed_by = _signature(ledger, link, view)
    judgement = judge(view.facts if view else None, sig=sig, label_lot=link.lot, online=True)
    facts = view.facts if view else None
    authorization = None
    if workshop is not None:
        authorization = workshop_authorization(ledger, workshop, link.gtin, activity).to_json()
    lot = facts.lot if facts else None
    return {
        **judgement.to_json(),
        "part": {"gtin": link.gtin, "serial": link.serial, "lot": lot, "label_lot": link.lot,
                 "uri": build_uri(resolver_base, link.gtin, link.serial, lot=lot or link.lot,
                                  sig=(view.part_sig if view and view.part_sig else link.sig))},
        "signature": {"status": sig, "signed_by": signed_by},
        "commissioned_by": directory.org_summary(ledger, facts.commissioned_by) if facts else None,
        "state": facts.state if facts else None,
        "custodian": view.custodian if view else None,
        "installation": view.installation if view else None,
        "history": view.history if view else [],
        "warranty": _warranty(view.claims if view else []),
        "open_flags": [{"kind": f.kind, "message": f.message, "seq": f.seq} for f in facts.open_flags]
        if facts else [],
        "recalls": [{"campaign_id": r.campaign_id, "reason": r.reason, "seq": r.seq} for r in facts.recalls]
        if facts else [],
        "authorization": authorization,
        "proof": _proof(ledger, view.latest_seq) if view else None,
        "checked_at": now,
    }


__all__ = [
    "FlagFact",
    "PartView",
    "RecallFact",
    "bundle_grants",
    "bundle_recalls",
    "part_view",
    "resolve_scan",
    "workshop_authorization",
]
