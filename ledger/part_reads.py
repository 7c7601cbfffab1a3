"""Paged reads of parts, grants, claims, recalls and alerts for the read API.

A thin adapter over the domain's repository (:class:`ledger.storage.domain_repo.DomainRepo`):
each function opens one read transaction and returns plain JSON-ready dicts,
so the HTTP layer never sees a session or a table row. Lists take
``offset``/``limit`` and the caller asks for ``limit + 1`` rows to learn
whether a next page exists.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from ledger.domain.common import subject
from ledger.domain.recalls import covers
from ledger.errors import NotFound
from ledger.log import Ledger
from ledger.resolve import claim_json, grant_json, history_json, recall_json
from ledger.storage.domain_repo import DomainRepo
from ledger.storage.domain_tables import LedgerFlag
from ledger.storage.parts_tables import Part

#: What a part's JSON says (:func:`part_json`), by column name.
PART_FIELDS = ("gtin", "serial", "lot", "category", "brand", "brand_owner", "commissioned_by", "commissioned_seq",
               "state", "custodian", "vehicle", "installed_by", "warranty_months", "first_installed_at", "suspect",
               "predecessor", "successor", "soh_pct", "last_seq")


def part_json(part: Part) -> dict[str, Any]:
    return {name: getattr(part, name) for name in PART_FIELDS}


def flag_json(flag: LedgerFlag) -> dict[str, Any]:
    return {"kind": flag.kind, "subject": flag.subject, "message": flag.message, "org_id": flag.org_id,
            "seq": flag.seq, "entry_id": flag.entry_id}


def list_parts(ledger: Ledger, *, gtin: str | None, lot: str | None, state: str | None, org: str | None,
               offset: int, limit: int) -> list[dict[str, Any]]:
    with ledger.db.read() as session:
        rows = DomainRepo(session).list_part_rows(PART_FIELDS, gtin=gtin, lot=lot, state=state, org=org,
                                                  offset=offset, limit=limit)
    return [dict(zip(PART_FIELDS, row, strict=True)) for row in rows]


def part_detail(ledger: Ledger, gtin: str, serial: str) -> dict[str, Any]:
    """State, full history, flags (open and closed), open recalls, installations and claims of one part."""
    with ledger.db.read() as session:
        repo = DomainRepo(session)
        part = repo.get_part(gtin, serial)
        if part is None:
            raise NotFound(f"no part {gtin}/{serial} has been commissioned", field="serial")
        about = subject(gtin, serial)
        open_ids = {f.id for f in repo.open_flags(subject=about)}
        return {
            "part": part_json(part),
            "history": [history_json(e) for e in repo.part_events(gtin, serial)],
            "flags": [{**flag_json(f), "open": f.id in open_ids} for f in repo.all_flags(subject=about)],
            "recalls": [recall_json(r) for r in repo.recalls(gtin=gtin, open_only=True) if covers(r, part)],
            "installations": [{"seq": i.seq, "vehicle": i.vehicle, "workshop": i.workshop, "site": i.site,
                               "logged": i.logged, "authorization": i.authorization, "grant_id": i.grant_id,
                               "removed_seq": i.removed_seq} for i in repo.installations(gtin=gtin, serial=serial)],
            "claims": [claim_json(c) for c in repo.list_claims(gtin=gtin, serial=serial)],
        }


def list_grants(ledger: Ledger, *, grantor: str | None, grantee: str | None, kind: str | None, status: str | None,
                offset: int, limit: int) -> list[dict[str, Any]]:
    with ledger.db.read() as session:
        rows = DomainRepo(session).list_grants(grantor=grantor, grantee=grantee, kind=kind, status=status,
                                               offset=offset, limit=limit)
        return [grant_json(g) for g in rows]


def list_claims(ledger: Ledger, *, gtin: str | None, lot: str | None, workshop: str | None, oem: str | None,
                status: str | None, offset: int, limit: int) -> list[dict[str, Any]]:
    with ledger.db.read() as session:
        rows = DomainRepo(session).list_claims(gtin=gtin, lot=lot, workshop=workshop, oem=oem, status=status,
                                               offset=offset, limit=limit)
        return [{**claim_json(c), "gtin": c.gtin, "serial": c.serial, "lot": c.lot, "oem": c.oem,
                 "vehicle": c.vehicle, "findings": dict(c.findings), "documents": list(c.documents),
                 "decided_seq": c.decided_seq, "paid_seq": c.paid_seq} for c in rows]


def recall_affected(ledger: Ledger, campaign_id: str, *, offset: int, limit: int) -> dict[str, Any]:
    """The recall and the parts it covers (with where each one is installed now)."""
    with ledger.db.read() as session:
        repo = DomainRepo(session)
        recall = repo.get_recall(campaign_id)
        if recall is None:
            raise NotFound(f"no recall campaign {campaign_id!r}", field="campaign_id")
        covered = [p for p in repo.parts_of_gtin(recall.gtin) if covers(recall, p)]
        return {"recall": recall_json(recall), "items": [part_json(p) for p in covered[offset:offset + limit]]}


def alerts_for(ledger: Ledger, org_id: str, *, offset: int, limit: int) -> list[dict[str, Any]]:
    """Open flags raised for ``org_id`` (a brand owner's alert queue), oldest first."""
    with ledger.db.read() as session:
        return [flag_json(f) for f in DomainRepo(session).open_flags(org_id=org_id, offset=offset, limit=limit)]


def bundle_grants(ledger: Ledger) -> list[dict[str, Any]]:
    """Every grant in trust-bundle form (all statuses, technicians included), so scope is judged offline in full."""
    with ledger.db.read() as session:
        return [grant_json(g) for g in DomainRepo(session).list_grants(limit=1_000_000)]


def bundle_products(ledger: Ledger) -> list[dict[str, Any]]:
    """Per commissioned GTIN, the brands, categories and brand owners recorded for its parts (trust bundle form).

    What an offline scanner needs to judge a grant's brand and category scope
    without the parts themselves; one grouped read, sized by the number of
    distinct (GTIN, brand, category, brand owner) combinations.
    """
    stmt = select(col(Part.gtin), col(Part.brand), col(Part.category), col(Part.brand_owner)).group_by(
        col(Part.gtin), col(Part.brand), col(Part.category), col(Part.brand_owner))
    products: dict[str, dict[str, set[str]]] = {}
    with ledger.db.read() as session:
        for gtin, brand, category, owner in session.execute(stmt):
            entry = products.setdefault(gtin, {"brands": set(), "categories": set(), "brand_owners": set()})
            entry["brands"].add(brand)
            entry["categories"].add(category)
            entry["brand_owners"].add(owner)
    return [{"gtin": gtin, **{k: sorted(v) for k, v in entry.items()}} for gtin, entry in sorted(products.items())]


__all__ = ["alerts_for", "bundle_grants", "bundle_products", "flag_json", "list_claims", "list_grants", "list_parts",
           "part_detail", "part_json", "recall_affected"]
