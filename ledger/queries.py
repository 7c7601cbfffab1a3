"""Read queries over the domain's projections (SPEC §4, §5.1): what the API and the CLI show.

Every function takes a :class:`~ledger.storage.db.Database`, runs in its own
read transaction and returns plain dicts and lists (JSON-ready: no floats,
times as RFC 3339 strings), so callers never touch SQL. Unknown identifiers
raise :class:`~ledger.errors.NotFound` with a stable code.
"""

from __future__ import annotations

from typing import Any, Literal

from ledger.domain.authz import judge
from ledger.domain.common import part_key, prefix_owner_in, subject
from ledger.domain.recalls import covers
from ledger.entries import utc_now
from ledger.errors import InvalidInput, NotFound
from ledger.storage.db import Database
from ledger.storage.domain_repo import DomainRepo
from ledger.storage.domain_tables import LedgerFlag
from ledger.storage.grant_tables import Grant
from ledger.storage.parts_tables import Installation, Part, Recall
from ledger.storage.state import StateStore, row_dict
from ledger.storage.warranty_tables import Claim

Tier = Literal["public", "legitimate_interest", "authority"]
TIERS: tuple[Tier, ...] = ("public", "legitimate_interest", "authority")
MAX_LIMIT = 1000


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be in [1, {MAX_LIMIT}]", code="page_too_large", field="limit")
    return limit


def _flag_json(flag: LedgerFlag, corrected: set[str]) -> dict[str, Any]:
    return {"seq": flag.seq, "entry_id": flag.entry_id, "kind": flag.kind, "subject": flag.subject,
            "org_id": flag.org_id, "message": flag.message, "open": flag.entry_id not in corrected}


def _recall_json(recall: Recall) -> dict[str, Any]:
    out = row_dict(recall)
    out["serial_ranges"] = [{"first": a, "last": b} for a, b in recall.serial_ranges]
    out["open"] = recall.cleared_seq is None
    return out


def _part_summary(part: Part) -> dict[str, Any]:
    return {"gtin": part.gtin, "serial": part.serial, "lot": part.lot, "category": part.category,
            "brand": part.brand, "brand_owner": part.brand_owner, "state": part.state, "custodian": part.custodian,
            "vehicle": part.vehicle, "installed_by": part.installed_by, "suspect": part.suspect,
            "commissioned_by": part.commissioned_by, "commissioned_seq": part.commissioned_seq}


def _require_part(repo: DomainRepo, gtin: str, serial: str) -> Part:
    part = repo.get_part(gtin, serial)
    if part is None:
        raise NotFound(f"part {gtin}/{serial} was never commissioned", code="unknown_part", field="serial")
    return part


def _claim_json(claim: Claim) -> dict[str, Any]:
    return row_dict(claim)


def _installation_json(inst: Installation) -> dict[str, Any]:
    return row_dict(inst)


# --- parts ---------------------------------------------------------------------------------------------------
def get_part(db: Database, gtin: str, serial: str) -> dict[str, Any]:
    """One part: lifecycle state, custodian, vehicle, lot, brand, commissioner, flags and open recalls."""
    with db.read() as session:
        repo = DomainRepo(session)
        part = _require_part(repo, gtin, serial)
        corrected = repo.corrected_entry_ids()
        flags = [_flag_json(f, corrected) for f in repo.all_flags(subject=subject(gtin, serial))]
        recalls = [_recall_json(r) for r in repo.recalls(gtin=gtin, open_only=True) if covers(r, part)]
        key = StateStore(session).get_key(part.commissioned_kid)
        out = _part_summary(part)
        out.update({
            "commissioned_kid": part.commissioned_kid,
            "commission_key_compromised": key is not None and key.compromised_at is not None,
            "pending_to": part.pending_to, "installed_seq": part.installed_seq,
            "first_installed_at": part.first_installed_at, "warranty_months": part.warranty_months,
            "predecessor": part.predecessor, "successor": part.successor, "soh_pct": part.soh_pct,
            "attributes": dict(part.attributes), "last_seq": part.last_seq,
            "flags": flags, "open_flags": [f for f in flags if f["open"]], "open_recalls": recalls,
            "recalled": bool(recalls),
        })
        return out


def part_history(db: Database, gtin: str, serial: str) -> list[dict[str, Any]]:
    """Every record that concerns the part, oldest first, with the authorization judged at each."""
    with db.read() as session:
        repo = DomainRepo(session)
        _require_part(repo, gtin, serial)
        return [row_dict(e) for e in repo.part_events(gtin, serial)]


def list_parts(db: Database, *, gtin: str | None = None, lot: str | None = None, state: str | None = None,
               org: str | None = None, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Parts matching every given filter (``org``: custodian, brand owner, commissioner or installer)."""
    with db.read() as session:
        rows = DomainRepo(session).list_parts(gtin=gtin, lot=lot, state=state, org=org, offset=offset,
                                              limit=_limit(limit))
        return [_part_summary(p) for p in rows]


# --- grants and authorization ----------------------------------------------------------------------------------
def _grant_json(repo: DomainRepo, grant: Grant) -> dict[str, Any]:
    out = row_dict(grant)
    out["changes"] = [row_dict(c) for c in repo.grant_changes(grant.grant_id)]
    return out


def list_grants(db: Database, *, grantor: str | None = None, grantee: str | None = None, kind: str | None = None,
                status: str | None = None, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    with db.read() as session:
        repo = DomainRepo(session)
        return [_grant_json(repo, g) for g in repo.list_grants(grantor=grantor, grantee=grantee, kind=kind,
                                                                status=status, offset=offset, limit=_limit(limit))]


def get_grant(db: Database, grant_id: str) -> dict[str, Any]:
    with db.read() as session:
        repo = DomainRepo(session)
        grant = repo.get_grant(grant_id)
        if grant is None:
            raise NotFound(f"grant {grant_id} does not exist", code="unknown_grant", field="grant_id")
        return _grant_json(repo, grant)


def workshop_authorization(db: Database, workshop_org: str, gtin: str, activity: str, at_seq: int | None = None,
                           *, serial: str | None = None, site: str | None = None,
                           technician: str | None = None) -> dict[str, Any]:
    """Which grant authorizes ``workshop_org`` to do ``activity`` on ``gtin`` (or why not).

    ``at_seq`` judges as of that record (before it applied, with the log's
    time at that record); ``None`` judges as of now, after the whole log. With
    a ``serial`` the part's brand and category count; without one, only the
    GTIN's brand owner, and category/site/technician scopes are not judged
    unless given.
    """
    with db.read() as session:
        repo = DomainRepo(session)
        state = StateStore(session)
        workshop = state.get_org(workshop_org)
        if workshop is None:
            raise NotFound(f"org {workshop_org} is not registered", code="unknown_org", field="workshop")
        if at_seq is None:
            seq, logged = repo.head_seq() + 1, utc_now()
        else:
            found = repo.logged_at(at_seq)
            if found is None:
                raise NotFound(f"no record with seq {at_seq}", field="at_seq")
            seq, logged = at_seq, found
        ignore: set[str] = set()
        if serial is not None:
            part = _require_part(repo, gtin, serial)
        else:
            owner = prefix_owner_in(state, gtin)
            if owner is None:
                raise NotFound(f"no registered OEM holds the company prefix of GTIN {gtin}", code="unknown_org",
                               field="gtin")
            part = Part(gtin=gtin, serial="", category="other", brand=owner.org_id, brand_owner=owner.org_id,
                        commissioned_by=owner.org_id, commissioned_seq=0, commissioned_kid="", state="",
                        warranty_months=0, last_seq=0)
            ignore |= {"category", "brand"}
        if site is None:
            ignore.add("site")
        if technician is None:
            ignore.add("technician")
        result = judge(repo, workshop=workshop, part=part, activity=activity, seq=seq, logged=logged, site=site,
                       technician=technician, ignore=frozenset(ignore))
        return {"workshop": workshop_org, "gtin": gtin, "serial": serial, "activity": activity,
                "at_seq": at_seq, "judged_at": logged, **result.to_json()}


# --- recalls ---------------------------------------------------------------------------------------------------
def list_recalls(db: Database, *, oem: str | None = None, gtin: str | None = None,
                 open_only: bool = False) -> list[dict[str, Any]]:
    with db.read() as session:
        return [_recall_json(r) for r in DomainRepo(session).recalls(oem=oem, gtin=gtin, open_only=open_only)]


def recall_affected(db: Database, campaign_id: str) -> dict[str, Any]:
    """A campaign and every commissioned part it covers, with where each one is now."""
    with db.read() as session:
        repo = DomainRepo(session)
        recall = repo.get_recall(campaign_id)
        if recall is None:
            raise NotFound(f"recall campaign {campaign_id} does not exist", code="unknown_recall",
                           field="campaign_id")
        parts = [_part_summary(p) for p in repo.parts_of_gtin(recall.gtin) if covers(recall, p)]
        return {"recall": _recall_json(recall), "parts": parts, "count": len(parts),
                "installed": sum(1 for p in parts if p["state"] == "installed"),
                "vehicles": sorted({p["vehicle"] for p in parts if p["vehicle"]})}


# --- warranty --------------------------------------------------------------------------------------------------
def list_claims(db: Database, *, gtin: str | None = None, serial: str | None = None, lot: str | None = None,
                workshop: str | None = None, oem: str | None = None, status: str | None = None, offset: int = 0,
                limit: int = 100) -> list[dict[str, Any]]:
    with db.read() as session:
        rows = DomainRepo(session).list_claims(gtin=gtin, serial=serial, lot=lot, workshop=workshop, oem=oem,
                                               status=status, offset=offset, limit=_limit(limit))
        return [_claim_json(c) for c in rows]


def get_claim(db: Database, claim_id: str) -> dict[str, Any]:
    with db.read() as session:
        claim = DomainRepo(session).get_claim(claim_id)
        if claim is None:
            raise NotFound(f"claim {claim_id} does not exist", code="unknown_claim", field="claim_id")
        return _claim_json(claim)


def trace_claim(db: Database, claim_id: str) -> dict[str, Any]:
    """Claim → part → lot → supplier (commissioner) → sibling parts of the lot, their vehicles and claims."""
    with db.read() as session:
        repo = DomainRepo(session)
        claim = repo.get_claim(claim_id)
        if claim is None:
            raise NotFound(f"claim {claim_id} does not exist", code="unknown_claim", field="claim_id")
        part = _require_part(repo, claim.gtin, claim.serial)
        supplier = StateStore(session).get_org(part.commissioned_by)
        siblings = [] if part.lot is None else [
            _part_summary(p) for p in repo.list_parts(gtin=part.gtin, lot=part.lot, limit=100_000)
            if p.serial != part.serial]
        sibling_claims = [] if part.lot is None else [
            _claim_json(c) for c in repo.list_claims(gtin=part.gtin, lot=part.lot) if c.claim_id != claim_id]
        return {
            "claim": _claim_json(claim),
            "part": _part_summary(part),
            "installations": [_installation_json(i) for i in repo.installations(gtin=part.gtin, serial=part.serial)],
            "lot": {"gtin": part.gtin, "lot": part.lot},
            "supplier": None if supplier is None else {"org_id": supplier.org_id, "kind": supplier.kind,
                                                       "name": supplier.name, "country": supplier.country},
            "siblings": siblings,
            "sibling_vehicles": sorted({s["vehicle"] for s in siblings if s["vehicle"]}),
            "sibling_claims": sibling_claims,
        }


def trace_lot(db: Database, gtin: str, lot: str) -> dict[str, Any]:
    """Lot → every part, installation, vehicle, workshop, claim and recall."""
    with db.read() as session:
        repo = DomainRepo(session)
        parts = repo.list_parts(gtin=gtin, lot=lot, limit=100_000)
        installs = repo.installations(gtin=gtin, lot=lot)
        claims = repo.list_claims(gtin=gtin, lot=lot)
        recalls = [_recall_json(r) for r in repo.recalls(gtin=gtin) if any(covers(r, p) for p in parts)]
        return {
            "gtin": gtin, "lot": lot,
            "parts": [_part_summary(p) for p in parts],
            "installations": [_installation_json(i) for i in installs],
            "vehicles": sorted({i.vehicle for i in installs}),
            "workshops": sorted({i.workshop for i in installs}),
            "claims": [_claim_json(c) for c in claims],
            "recalls": recalls,
            "suppliers": sorted({p.commissioned_by for p in parts}),
        }


# --- alerts ----------------------------------------------------------------------------------------------------
def alerts_for_org(db: Database, org: str, *, include_closed: bool = False, offset: int = 0,
                   limit: int = 100) -> list[dict[str, Any]]:
    """The flags raised for ``org`` (an OEM: flags on parts of its brands), oldest first."""
    with db.read() as session:
        repo = DomainRepo(session)
        corrected = repo.corrected_entry_ids()
        if include_closed:
            rows = repo.all_flags(org_id=org, offset=offset, limit=_limit(limit))
        else:
            rows = repo.open_flags(org_id=org, offset=offset, limit=_limit(limit))
        return [_flag_json(f, corrected) for f in rows]


# --- batteries -------------------------------------------------------------------------------------------------
_PUBLIC_BATTERY = ("chemistry", "capacity_wh", "mass_g", "voltage_mv", "carbon_footprint_g",
                   "recycled_content_permille", "cycle_life", "manufactured_on")


def battery_passport(db: Database, gtin: str, serial: str, tier: Tier = "public") -> dict[str, Any]:
    """The battery passport (SPEC §4.6) at an access tier.

    ``public``: identity, maker, chemistry and rated figures, carbon
    footprint, recycled content, service status and its lineage.
    ``legitimate_interest`` (repairers, second-life buyers): adds the state of
    health history and cycle counts. ``authority``: adds custody, every
    installation (vehicle pseudonyms), recovered materials and all flags.
    """
    if tier not in TIERS:
        raise InvalidInput(f"tier: expected one of {', '.join(TIERS)}", code="invalid_field", field="tier")
    with db.read() as session:
        repo = DomainRepo(session)
        part = _require_part(repo, gtin, serial)
        if part.category not in {"hv_battery", "lv_battery"}:
            raise NotFound(f"part {gtin}/{serial} is a {part.category} part: it has no battery passport",
                           code="unknown_part", field="serial")
        battery = dict(part.attributes.get("battery", {}))
        maker = StateStore(session).get_org(part.commissioned_by)
        status = ("end_of_life" if part.state in {"recycled", "scrapped"} else
                  "repurposed" if part.state == "repurposed" else
                  "waste" if part.state == "collected" else "in_service")
        out: dict[str, Any] = {
            "tier": tier, "gtin": gtin, "serial": serial, "category": part.category, "brand": part.brand,
            "manufacturer": {"org_id": part.commissioned_by, "name": maker.name if maker else None,
                             "country": maker.country if maker else None},
            "battery": {k: battery[k] for k in _PUBLIC_BATTERY if k in battery},
            "status": status, "second_life": bool(part.attributes.get("second_life")),
            "predecessor": part.predecessor, "successor": part.successor,
        }
        if tier in ("legitimate_interest", "authority"):
            reports = repo.battery_reports(gtin, serial)
            out["soh_pct"] = part.soh_pct
            out["soh_history"] = [{"seq": r.seq, "soh_pct": r.soh_pct, "cycles": r.cycles, "logged": r.logged,
                                   "by": r.org_id} for r in reports]
            out["state"] = part.state
        if tier == "authority":
            corrected = repo.corrected_entry_ids()
            out["custodian"] = part.custodian
            out["installations"] = [_installation_json(i) for i in repo.installations(gtin=gtin, serial=serial)]
            out["recovered_g"] = dict(part.attributes.get("recovered_g", {}))
            out["flags"] = [_flag_json(f, corrected) for f in repo.all_flags(subject=subject(gtin, serial))]
            out["history"] = [row_dict(e) for e in repo.part_events(gtin, serial)]
        return out


def lineage(db: Database, gtin: str, serial: str) -> list[str]:
    """The chain of identities of a repurposed part, oldest first (``gtin/serial`` keys)."""
    with db.read() as session:
        repo = DomainRepo(session)
        part = _require_part(repo, gtin, serial)
        chain = [part_key(gtin, serial)]
        seen = set(chain)
        current: Part | None = part
        while current is not None and current.predecessor and current.predecessor not in seen:
            g, s = current.predecessor.split("/", 1)
            chain.insert(0, current.predecessor)
            seen.add(current.predecessor)
            current = repo.get_part(g, s)
        current = part
        while current is not None and current.successor and current.successor not in seen:
            g, s = current.successor.split("/", 1)
            chain.append(current.successor)
            seen.add(current.successor)
            current = repo.get_part(g, s)
        return chain


__all__ = [
    "TIERS",
    "alerts_for_org",
    "battery_passport",
    "get_claim",
    "get_grant",
    "get_part",
    "lineage",
    "list_claims",
    "list_grants",
    "list_parts",
    "list_recalls",
    "part_history",
    "recall_affected",
    "trace_claim",
    "trace_lot",
    "workshop_authorization",
]
