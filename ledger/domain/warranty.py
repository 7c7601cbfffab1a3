"""Warranty (SPEC §4.5): claims with machine-computed findings, decisions with reason codes, payment.

``warranty.claim`` (a workshop)::

    {"claim_id": "C-1", "gtin", "serial", "failure_code": "P0A80", "vehicle"?: pseudonym,
     "documents"?: [sha256 hex of off-log evidence], "amount"?: {"currency": "EUR", "minor": 12900}}

Refused outright (nothing appended): a claim id reused, a second claim on the
same part and failure code while an earlier one is not rejected
(``duplicate_claim``), and a claim on a part under an open recall
(``part_recalled``: recalled parts are handled by their campaign).

Otherwise the claim is recorded with findings computed from the log as of
its position — installed by this workshop? grant in scope (at installation
and now, for ``warranty_claim``)? within the warranty term counted from the
first installation? removed? suspect? an earlier claim on the part? recalled?
— and is ``open`` if every finding passes, else ``held`` with the failed
findings as reasons. The brand owner's warranty team then writes
``warranty.decide`` (``approve`` / ``reject`` with reason codes / ``hold``)
and ``warranty.pay`` on approved claims.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ledger.domain import authz
from ledger.domain.body import get_int, get_opt_str, get_str_list, require_keys
from ledger.domain.common import (
    handles,
    read_code,
    read_documents,
    read_id,
    read_part_ref,
    read_vehicle,
    record_event,
    repo,
    require_kind,
    require_part,
    subject,
)
from ledger.domain.recalls import open_recalls_for
from ledger.domain.registry import Context
from ledger.entries import parse_time
from ledger.errors import Conflict, InvalidInput, NotFound, PolicyRejected
from ledger.storage.warranty_tables import Claim

REJECT_REASONS = ("not_installed_by_claimant", "grant_not_in_scope", "outside_warranty_term", "part_suspect",
                  "prior_claim", "part_recalled", "misuse", "no_fault_found", "insufficient_evidence",
                  "not_a_warranty_failure", "other")
#: Finding → the hold reason when it fails.
HOLD_REASONS = {
    "installed_by_claimant": "not_installed_by_claimant",
    "grant_in_scope": "grant_not_in_scope",
    "within_term": "outside_warranty_term",
    "suspect": "part_suspect",
    "duplicate": "prior_claim",
}
SUSPECT_KINDS = frozenset({"clone_suspected", "scrapped_reinstalled", "recycled_reinstalled", "retired_part_seen",
                           "key_compromised"})
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def read_amount(body: dict[str, Any], name: str = "amount") -> dict[str, Any]:
    raw = body.get(name)
    if not isinstance(raw, dict) or set(raw) != {"currency", "minor"} or not isinstance(raw["currency"], str) \
            or not _CURRENCY.match(raw["currency"]):
        raise InvalidInput(f"body.{name}: expected {{currency: ISO 4217 code, minor: integer minor units}}",
                           code="invalid_body", field=name)
    get_int(raw, "minor", minimum=0, maximum=10**12)
    return {"currency": raw["currency"], "minor": raw["minor"]}


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus calendar months, clamped to the last day of the target month."""
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=min(moment.day, day))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def compute_findings(ctx: Context, *, workshop_id: str, gtin: str, serial: str, failure_code: str
                     ) -> dict[str, Any]:
    r = repo(ctx)
    part = require_part(ctx, gtin, serial)
    mine = [i for i in r.installations(gtin=gtin, serial=serial) if i.workshop == workshop_id]
    installed_by_claimant = bool(mine)
    org = require_kind(ctx, "workshop")
    # A claim is filed from the office, not at a bay: site and technician scopes do not apply to it.
    now = authz.judge(r, workshop=org, part=part, activity="warranty_claim", seq=ctx.seq, logged=ctx.logged,
                      ignore=frozenset({"site", "technician"}))
    at_install = mine[-1].authorization if mine else None
    grant_in_scope = now.authorized and at_install == "authorized"
    within_term = part.first_installed_at is not None and parse_time(ctx.logged) < add_months(
        parse_time(part.first_installed_at), part.warranty_months)
    flags = r.open_flags(subject=subject(gtin, serial))
    suspect = part.suspect or any(f.kind in SUSPECT_KINDS for f in flags)
    prior = [c.claim_id for c in r.list_claims(gtin=gtin, serial=serial) if c.status != "rejected"]
    return {
        "installed_by_claimant": installed_by_claimant,
        "grant_in_scope": grant_in_scope,
        "authorization_at_install": at_install,
        "authorization_now": now.status,
        "within_term": within_term,
        "warranty_until": None if part.first_installed_at is None else add_months(
            parse_time(part.first_installed_at), part.warranty_months).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "removed": part.state != "installed",
        "suspect": suspect,
        "duplicate": bool(prior),
        "prior_claims": prior,
        "recalled": False,
    }


@handles("warranty.claim")
def claim(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, {"claim_id", "gtin", "serial", "failure_code"}, {"vehicle", "documents", "amount"})
    claim_id = read_id(body, "claim_id")
    gtin, serial = read_part_ref(body)
    failure_code = read_code(body, "failure_code")
    vehicle = read_vehicle(body) if body.get("vehicle") is not None else None
    documents = read_documents(body)
    amount = read_amount(body) if body.get("amount") is not None else None
    org = require_kind(ctx, "workshop")
    part = require_part(ctx, gtin, serial)
    r = repo(ctx)
    if r.get_claim(claim_id) is not None:
        raise Conflict(f"claim {claim_id} already exists", code="duplicate_claim", field="claim_id")
    same = [c for c in r.list_claims(gtin=gtin, serial=serial)
            if c.failure_code == failure_code and c.status != "rejected"]
    if same:
        raise Conflict(f"claim {same[0].claim_id} already covers failure {failure_code} on part {gtin}/{serial}",
                       code="duplicate_claim", field="failure_code")
    recalls = open_recalls_for(ctx, part)
    if recalls:
        raise PolicyRejected(f"part {gtin}/{serial} is under open recall {recalls[0].campaign_id}: it is handled by "
                             "the recall campaign, not by a warranty claim", code="part_recalled", field="serial")
    findings = compute_findings(ctx, workshop_id=org.org_id, gtin=gtin, serial=serial, failure_code=failure_code)
    # installed_by_claimant, grant_in_scope and within_term must be true; suspect and duplicate false.
    failed = {f for f in ("installed_by_claimant", "grant_in_scope", "within_term") if not findings[f]}
    failed |= {f for f in ("suspect", "duplicate") if findings[f]}
    held = [reason for finding, reason in HOLD_REASONS.items() if finding in failed]
    r.add(Claim(claim_id=claim_id, gtin=gtin, serial=serial, lot=part.lot, workshop=org.org_id,
                oem=part.brand_owner, vehicle=vehicle, failure_code=failure_code, documents=documents, amount=amount,
                findings=findings, held_reasons=held, status="held" if held else "open", filed_seq=ctx.seq))
    record_event(ctx, part)


def _claim_for_oem(ctx: Context) -> Claim:
    claim_id = read_id(ctx.entry.body, "claim_id")
    require_kind(ctx, "oem")
    found = repo(ctx).get_claim(claim_id)
    if found is None:
        raise NotFound(f"claim {claim_id} does not exist", code="unknown_claim", field="claim_id")
    if found.oem != ctx.entry.org:
        raise PolicyRejected(f"claim {claim_id} is decided by the brand owner {found.oem}", code="not_authorized",
                             field="claim_id")
    return found


@handles("warranty.decide")
def decide(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, {"claim_id", "decision"}, {"reason_codes", "documents"})
    decision = body.get("decision")
    if decision not in ("approve", "reject", "hold"):
        raise InvalidInput("body.decision: expected approve, reject or hold", code="invalid_body", field="decision")
    reasons = get_str_list(body, "reason_codes", what="reason codes", max_items=20)
    unknown = [x for x in reasons if x not in REJECT_REASONS]
    if unknown:
        raise InvalidInput(f"body.reason_codes: {', '.join(unknown)} unknown; expected some of "
                           f"{', '.join(REJECT_REASONS)}", code="invalid_body", field="reason_codes")
    if decision in ("reject", "hold") and not reasons:
        raise InvalidInput(f"body.reason_codes: a decision to {decision} names at least one reason",
                           code="invalid_body", field="reason_codes")
    read_documents(body)
    found = _claim_for_oem(ctx)
    if found.status not in ("open", "held"):
        raise PolicyRejected(f"claim {found.claim_id} is {found.status}: it can no longer be decided",
                             code="invalid_state", field="claim_id")
    found.status = {"approve": "approved", "reject": "rejected", "hold": "held"}[str(decision)]
    found.reason_codes = reasons
    found.decided_seq = ctx.seq
    repo(ctx).save(found)
    record_event(ctx, require_part(ctx, found.gtin, found.serial))


@handles("warranty.pay")
def pay(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, {"claim_id", "amount"}, {"reference"})
    amount = read_amount(body)
    get_opt_str(body, "reference", max_len=64)
    found = _claim_for_oem(ctx)
    if found.status != "approved":
        raise PolicyRejected(f"claim {found.claim_id} is {found.status}: only approved claims are paid",
                             code="invalid_state", field="claim_id")
    found.status, found.paid, found.paid_seq = "paid", amount, ctx.seq
    repo(ctx).save(found)
    record_event(ctx, require_part(ctx, found.gtin, found.serial))
