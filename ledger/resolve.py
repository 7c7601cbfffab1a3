"""From the domain's projections to what a scan and a trust bundle need.

This is the one adapter between the domain's query module and the scan
path: it reduces parts, flags, recalls and grants to the plain facts of
:mod:`ledger.verdict`, assembles the full verdict document (with the
inclusion proof of the part's latest record against a signed checkpoint),
and exports grants and recalls in the bundle form of :mod:`ledger.trust_bundle`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ledger import directory, merkle
from ledger.digital_link import PartLink, build_uri, verify_part_sig
from ledger.domain import authz
from ledger.domain.common import subject
from ledger.domain.recalls import covers
from ledger.errors import SignatureError
from ledger.keys import b64decode, b64encode
from ledger.log import Ledger
from ledger.storage import proof_reads
from ledger.storage.domain_repo import DomainRepo
from ledger.storage.grant_tables import Grant
from ledger.storage.parts_tables import PartEvent, Recall
from ledger.storage.state import StateStore
from ledger.storage.warranty_tables import Claim
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
    commissioned_seq: int
    brand_owner: str
    custodian: str | None = None
    installation: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    signer_keys: list[bytes] = field(default_factory=list)


def history_json(event: PartEvent) -> dict[str, Any]:
    return {"seq": event.seq, "type": event.type, "org": event.org_id, "logged": event.logged,
            "state_after": event.state_after, "authorization": event.authorization, "grant_id": event.grant_id}


def claim_json(claim: Claim) -> dict[str, Any]:
    return {"claim_id": claim.claim_id, "status": claim.status, "workshop": claim.workshop,
            "failure_code": claim.failure_code, "filed_seq": claim.filed_seq, "held_reasons": list(claim.held_reasons),
            "reason_codes": list(claim.reason_codes)}


def part_view(ledger: Ledger, gtin: str, serial: str) -> PartView | None:
    """The part's facts from the domain projections (one read transaction), or ``None`` if never commissioned."""
    with ledger.db.read() as session:
        return _part_view(DomainRepo(session), gtin, serial)


def _part_view(repo: DomainRepo, gtin: str, serial: str) -> PartView | None:
    part = repo.get_part(gtin, serial)
    if part is None:
        return None
    events = repo.part_events(gtin, serial)
    flags = repo.open_flags(subject=subject(gtin, serial))
    recalls = [r for r in repo.recalls(gtin=gtin, open_only=True) if covers(r, part)]
    claims = repo.list_claims(gtin=gtin, serial=serial)
    installs = repo.open_installations(gtin, serial)
    keys = StateStore(repo.session).keys_of(part.commissioned_by)
    commission_key = next((k for k in keys if k.kid == part.commissioned_kid), None)
    commissioned_at = events[0].logged if events else None
    compromised = bool(commission_key is not None and commission_key.compromised_at is not None
                       and commissioned_at is not None and commission_key.compromised_at <= commissioned_at)
    installation = None
    if installs:
        inst = installs[-1]
        installation = {"vehicle": inst.vehicle, "workshop": inst.workshop, "site": inst.site, "seq": inst.seq,
                        "logged": inst.logged, "authorization": inst.authorization, "grant_id": inst.grant_id}
    facts = PartFacts(
        gtin=gtin, serial=serial, state=part.state, commissioned_by=part.commissioned_by, lot=part.lot,
        open_flags=tuple(FlagFact(kind=f.kind, message=f.message, seq=f.seq) for f in flags),
        recalls=tuple(RecallFact(campaign_id=r.campaign_id, reason=r.reason_code, seq=r.set_seq) for r in recalls),
        key_compromised=compromised,
    )
    return PartView(facts=facts, latest_seq=part.last_seq, commissioned_seq=part.commissioned_seq,
                    brand_owner=part.brand_owner, custodian=part.custodian, installation=installation,
                    history=[history_json(e) for e in events], claims=[claim_json(c) for c in claims],
                    signer_keys=[bytes(k.public_key) for k in keys])


def label_sig(ledger: Ledger, view: PartView) -> str | None:
    """The AI 8030 value recorded in the commissioning entry (``body.part_sig``), if the org recorded one."""
    value = ledger.record(view.commissioned_seq).entry.body.get("part_sig")
    return value if isinstance(value, str) else None


def grant_json(grant: Grant) -> dict[str, Any]:
    return {"grant_id": grant.grant_id, "kind": grant.kind, "grantor": grant.grantor, "grantee": grant.grantee,
            "activities": list(grant.activities), "gtin_prefixes": list(grant.gtin_prefixes),
            "brands": list(grant.brands), "categories": list(grant.categories), "countries": list(grant.countries),
            "sites": list(grant.sites), "valid_from": grant.valid_from, "valid_until": grant.valid_until,
            "status": grant.status, "issued_seq": grant.issued_seq, "changed_seq": grant.changed_seq}


def recall_json(recall: Recall) -> dict[str, Any]:
    return {"campaign_id": recall.campaign_id, "oem": recall.oem, "gtin": recall.gtin, "lots": list(recall.lots),
            "serial_ranges": [list(r) for r in recall.serial_ranges], "reason": recall.reason_code,
            "set_seq": recall.set_seq, "cleared_seq": recall.cleared_seq}


def bundle_grants(ledger: Ledger) -> list[dict[str, Any]]:
    """Every workshop and commission grant (all statuses: a revoked grant must be known offline)."""
    with ledger.db.read() as session:
        return [grant_json(g) for g in DomainRepo(session).list_grants(limit=1_000_000)]


def bundle_recalls(ledger: Ledger) -> list[dict[str, Any]]:
    """Every open recall campaign, in trust-bundle form."""
    with ledger.db.read() as session:
        return [recall_json(r) for r in DomainRepo(session).recalls(open_only=True)]


def workshop_authorization(ledger: Ledger, workshop: str, gtin: str, serial: str, activity: str,
                           *, now: str) -> Authorization:
    """The domain's authorization rule for ``workshop`` on this part, judged as of the log's head and ``now``."""
    with ledger.db.read() as session:
        org = StateStore(session).get_org(workshop)
        if org is None:
            return Authorization(workshop, activity, False, None, "unknown_org",
                                 f"{workshop} is not a registered org")
        repo = DomainRepo(session)
        part = repo.get_part(gtin, serial)
        if part is None:
            return Authorization(workshop, activity, False, None, "unknown_part",
                                 f"no part {gtin}/{serial} to authorize {activity} on")
        result = authz.judge(repo, workshop=org, part=part, activity=activity, seq=repo.head_seq() + 1, logged=now)
    return Authorization(workshop, activity, result.authorized, result.grant_id, result.status, result.message)


def _signature(ledger: Ledger, link: PartLink, view: PartView | None) -> tuple[SigStatus, str | None]:
    if link.sig is None:
        return "missing", None
    if view is not None:
        candidates = [(view.facts.commissioned_by, view.signer_keys)]
    else:
        candidates = [(o["org_id"], [b64decode(k["public_key"], field="public_key", size=32) for k in o["keys"]])
                      for o in directory.all_orgs_with_keys(ledger)
                      if any(gtin_matches_prefix(link.gtin, p) for p in o["gs1_prefixes"])]
        if not candidates:
            return "unknown_key", None
    for org_id, keys in candidates:
        for public_key in keys:
            try:
                verify_part_sig(public_key, link.gtin, link.serial, link.sig)
            except SignatureError:
                continue
            return "valid", org_id
    return "invalid", None


def _proof(repo: DomainRepo, seq: int) -> dict[str, Any] | None:
    """Inclusion of record ``seq`` in the latest checkpoint, read in the same transaction as the facts."""
    session = repo.session
    checkpoint = proof_reads.latest_checkpoint(session)
    raw = proof_reads.record_bytes(session, seq)
    if checkpoint is None or raw is None or seq >= checkpoint[0]:
        return None
    size, _root, note = checkpoint
    leaf, proof = proof_reads.inclusion_proof(session, seq, size)
    return {"seq": seq, "tree_size": size, "leaf_hash": b64encode(leaf), "record": b64encode(raw),
            "inclusion_proof": merkle.encode_proof(proof), "checkpoint": note}


def _org_summary(repo: DomainRepo, org_id: str) -> dict[str, Any] | None:
    org = StateStore(repo.session).get_org(org_id)
    return None if org is None else {"org_id": org.org_id, "name": org.name, "kind": org.kind,
                                     "country": org.country}


def _warranty(claims: list[dict[str, Any]]) -> dict[str, Any]:
    if not claims:
        return {"status": "none", "claims": []}
    open_states = {"filed", "open", "held", "pending", "submitted"}
    status = "open_claims" if any(str(c.get("status", "")) in open_states for c in claims) else "claimed"
    return {"status": status, "claims": claims}


class VerdictCache:
    """Verdict facts by (GTIN, serial, label lot, label signature, tree size), least recently used first out.

    Everything in a verdict except ``checked_at`` and the caller's
    authorization is a pure function of the log, and an append-only log is
    fully identified by its size, so an entry keyed by the size read in the
    request's own transaction is never stale: the first append after it
    changes the key. Repeated scans of the same label (a phone reloading, a
    shelf being checked twice) then cost one small query.
    """

    def __init__(self, maxsize: int = 4096) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[Any, ...], value: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)


def _facts_document(ledger: Ledger, repo: DomainRepo, link: PartLink, resolver_base: str) -> dict[str, Any]:
    view = _part_view(repo, link.gtin, link.serial)
    maker = _org_summary(repo, view.facts.commissioned_by) if view else None
    proof = _proof(repo, view.latest_seq) if view else None
    sig, signed_by = _signature(ledger, link, view)
    judgement = judge(view.facts if view else None, sig=sig, label_lot=link.lot, online=True)
    facts = view.facts if view else None
    lot = facts.lot if facts else None
    return {
        **judgement.to_json(),
        "part": {"gtin": link.gtin, "serial": link.serial, "lot": lot, "label_lot": link.lot,
                 "uri": build_uri(resolver_base, link.gtin, link.serial, lot=lot or link.lot, sig=link.sig)},
        "signature": {"status": sig, "signed_by": signed_by},
        "commissioned_by": maker,
        "state": facts.state if facts else None,
        "custodian": view.custodian if view else None,
        "installation": view.installation if view else None,
        "history": view.history if view else [],
        "warranty": _warranty(view.claims if view else []),
        "open_flags": [{"kind": f.kind, "message": f.message, "seq": f.seq} for f in facts.open_flags]
        if facts else [],
        "recalls": [{"campaign_id": r.campaign_id, "reason": r.reason, "seq": r.seq} for r in facts.recalls]
        if facts else [],
        "proof": proof,
    }


def resolve_scan(ledger: Ledger, link: PartLink, *, resolver_base: str, now: str, workshop: str | None = None,
                 activity: str = "install", cache: VerdictCache | None = None) -> dict[str, Any]:
    """The verdict document for a scanned Digital Link (see ``api.scan_schemas.ScanVerdict``).

    The part's facts, the commissioning org, the checkpoint and the inclusion
    proof are read in one read transaction, so they describe one state of the log.
    """
    with ledger.db.read() as session:
        repo = DomainRepo(session)
        head = proof_reads.latest_checkpoint(session)
        key = (link.gtin, link.serial, link.lot, link.sig, resolver_base, head[0] if head else 0)
        document = cache.get(key) if cache is not None else None
        if document is None:
            document = _facts_document(ledger, repo, link, resolver_base)
            if cache is not None:
                cache.put(key, document)
    authorization = None
    if workshop is not None:
        authorization = workshop_authorization(ledger, workshop, link.gtin, link.serial, activity, now=now).to_json()
    return {**document, "authorization": authorization, "checked_at": now}


__all__ = [
    "PartView",
    "VerdictCache",
    "bundle_grants",
    "bundle_recalls",
    "claim_json",
    "grant_json",
    "history_json",
    "label_sig",
    "part_view",
    "recall_json",
    "resolve_scan",
    "workshop_authorization",
]
