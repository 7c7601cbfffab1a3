"""The part lifecycle (SPEC §4.3, §4.4): commission, custody, installation, service and end of life.

States::

    commissioned → shipped → received → installed ⇄ removed → returned / scrapped /
    collected → recycled | repurposed (a new identity linked to this one)

Every body names the part as ``{"gtin": "<GTIN-14>", "serial": "<AI 21>"}``
and vehicles only by pseudonym (``vehicle``). What is *rejected* (nothing
appended) and what is *recorded and flagged* follows SPEC §4.4 and the rule
table in ``docs/policy.md``: acting outside one's role, commissioning
outside one's prefixes, a serial commissioned twice, moving a part one does
not hold, or a lifecycle step that cannot apply are rejected; a clone
suspicion, a retired serial coming back, a recalled part fitted or an
installation outside a grant (or with none: *independent*) are recorded as
evidence and flagged for the brand owner.
"""

from __future__ import annotations

import re
from typing import Any

from ledger.domain import authz
from ledger.domain.body import get_int, get_opt_str, get_str, require_keys
from ledger.domain.common import (
    BATTERY_CATEGORIES,
    CATEGORIES,
    HOLDER_KINDS,
    actor,
    flag,
    handles,
    part_key,
    prefix_owner,
    read_code,
    read_documents,
    read_part_ref,
    read_vehicle,
    record_event,
    repo,
    require_kind,
    require_org,
    require_part,
)
from ledger.domain.part_sig import check_part_sig
from ledger.domain.recalls import open_recalls_for
from ledger.domain.registry import Context
from ledger.errors import Conflict, InvalidInput, PolicyRejected
from ledger.gs1 import gtin_has_prefix, validate_gln, validate_gtin, validate_lot, validate_serial
from ledger.storage.domain_tables import Org
from ledger.storage.parts_tables import Installation, Part
from ledger.storage.staging import new_row

RETIRED = frozenset({"scrapped", "collected", "recycled", "repurposed"})
GONE = frozenset({"recycled", "repurposed"})
DEFAULT_WARRANTY_MONTHS = 24
_MATERIAL_RE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
_BATTERY_INT = ("capacity_wh", "mass_g", "voltage_mv", "carbon_footprint_g", "recycled_content_permille",
                "cycle_life")
_BATTERY_STR = ("chemistry", "manufactured_on", "manufacturer_site")


# --- shared checks -------------------------------------------------------------------------------
def commission_owner(ctx: Context, org: Org, gtin: str) -> str:
    """The brand owner under whose prefix ``org`` may commission ``gtin`` now, or a rejection.

    An OEM (or a recycler re-commissioning a second-life battery) needs the
    prefix among its own; a supplier needs an active, in-date commission grant
    from the OEM that owns the prefix, covering the GTIN.
    """
    if org.kind not in {"oem", "supplier", "recycler"}:
        raise PolicyRejected(f"{ctx.entry.type}: parts are commissioned by OEMs and granted suppliers, not by "
                             f"{org.kind} {org.org_id}", code="role_forbidden", field="org")
    if any(gtin_has_prefix(gtin, p) for p in org.gs1_prefixes):
        return org.org_id
    owner = prefix_owner(ctx, gtin)
    if org.kind == "supplier" and owner is not None:
        for grant in repo(ctx).list_grants(grantee=org.org_id, grantor=owner.org_id, kind="commission"):
            in_date = grant.valid_from <= ctx.logged and (grant.valid_until is None or ctx.logged < grant.valid_until)
            if grant.status == "active" and in_date and any(gtin_has_prefix(gtin, p) for p in grant.gtin_prefixes):
                return owner.org_id
    raise PolicyRejected(f"{org.org_id} may not commission GTIN {gtin}: its company prefix is neither "
                         f"{org.org_id}'s nor covered by an active commission grant"
                         f"{' from ' + owner.org_id if owner else ''}", code="prefix_not_granted", field="gtin")


def _holder(ctx: Context) -> Org:
    return require_kind(ctx, *sorted(HOLDER_KINDS))


def _must_hold(ctx: Context, part: Part) -> None:
    if part.custodian != ctx.entry.org:
        raise PolicyRejected(f"{ctx.entry.org} does not hold part {part_key(part.gtin, part.serial)} (custodian: "
                             f"{part.custodian or 'none — ' + part.state})", code="not_custodian", field="serial")


def _not_in(part: Part, states: frozenset[str] | set[str], what: str) -> None:
    if part.state in states:
        raise PolicyRejected(f"part {part_key(part.gtin, part.serial)} is {part.state}: {what}", code="invalid_state",
                             field="serial")


def _site(ctx: Context, org: Org) -> str | None:
    site = ctx.entry.body.get("site")
    if site is None:
        return None
    gln = validate_gln(site, field="body.site")
    if gln not in org.glns:
        raise PolicyRejected(f"body.site: GLN {gln} is not a registered site of {org.org_id}", code="not_authorized",
                             field="site")
    return gln


def _technician(body: dict[str, Any]) -> str | None:
    return get_opt_str(body, "technician", max_len=64)


def _part_fields(*extra: str) -> set[str]:
    return {"gtin", "serial", *extra}


def _battery_attrs(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or set(raw) - set(_BATTERY_INT) - set(_BATTERY_STR):
        raise InvalidInput(f"body.battery: expected an object with {', '.join(_BATTERY_INT + _BATTERY_STR)}",
                           code="invalid_body", field="battery")
    for name in _BATTERY_INT:
        if name in raw:
            get_int(raw, name, minimum=0, maximum=10**12)
    for name in _BATTERY_STR:
        if name in raw:
            get_str(raw, name, max_len=100)
    return dict(raw)


def _authorize(ctx: Context, org: Org, part: Part, activity: str, site: str | None,
               technician: str | None) -> authz.AuthzResult | None:
    if org.kind != "workshop":
        return None
    return authz.judge(repo(ctx), workshop=org, part=part, activity=activity, seq=ctx.seq, logged=ctx.logged,
                       site=site, technician=technician)


def _seen_retired(ctx: Context, part: Part) -> None:
    if part.state in RETIRED:
        flag(ctx, part, "retired_part_seen", f"{ctx.entry.type} by {ctx.entry.org} on a part recorded as "
             f"{part.state}")
        part.suspect = True


# --- commissioning ---------------------------------------------------------------------------------
@handles("part.commission")
def commission(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, _part_fields("category"),
                 {"lot", "brand", "model", "warranty_months", "site", "battery", "part_sig"})
    gtin, serial = read_part_ref(body)
    category = body.get("category")
    if category not in CATEGORIES:
        raise InvalidInput(f"body.category: expected one of {', '.join(CATEGORIES)}", code="invalid_body",
                           field="category")
    lot = validate_lot(body["lot"], field="body.lot") if body.get("lot") is not None else None
    brand = get_opt_str(body, "brand", max_len=64)
    attributes: dict[str, Any] = {}
    model = get_opt_str(body, "model", max_len=100)
    if model is not None:
        attributes["model"] = model
    if body.get("battery") is not None:
        if category not in BATTERY_CATEGORIES:
            raise InvalidInput("body.battery: only battery categories carry battery data", code="invalid_body",
                               field="battery")
        attributes["battery"] = _battery_attrs(body["battery"])
    months = get_int(body, "warranty_months", minimum=0, maximum=240) if "warranty_months" in body \
        else DEFAULT_WARRANTY_MONTHS
    org = actor(ctx)
    owner = commission_owner(ctx, org, gtin)
    _site(ctx, org)
    check_part_sig(ctx, org, gtin, serial)
    r = repo(ctx)
    if r.get_part(gtin, serial) is not None:
        raise Conflict(f"part {gtin}/{serial} is already commissioned", code="duplicate_serial", field="serial")
    part = new_row(Part, gtin=gtin, serial=serial, lot=lot, category=str(category), brand=brand or owner,
                   brand_owner=owner, commissioned_by=org.org_id, commissioned_seq=ctx.seq,
                   commissioned_kid=ctx.entry.kid, state="commissioned", custodian=org.org_id,
                   warranty_months=months, attributes=attributes, last_seq=ctx.seq)
    r.add(part)
    record_event(ctx, part)


# --- custody ---------------------------------------------------------------------------------------
@handles("part.ship")
def ship(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, _part_fields("to"), {"site"})
    gtin, serial = read_part_ref(body)
    org = _holder(ctx)
    to = require_org(ctx, get_str(body, "to", max_len=64), "to")
    if to.kind not in HOLDER_KINDS:
        raise PolicyRejected(f"body.to: a {to.kind} does not hold parts", code="role_forbidden", field="to")
    _site(ctx, org)
    part = require_part(ctx, gtin, serial)
    _must_hold(ctx, part)
    _not_in(part, {"installed"} | GONE, "it cannot be shipped")
    part.state, part.pending_to = "shipped", to.org_id
    record_event(ctx, part)


@handles("part.receive")
def receive(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, _part_fields(), {"from", "site"})
    gtin, serial = read_part_ref(body)
    org = _holder(ctx)
    if body.get("from") is not None:
        require_org(ctx, get_str(body, "from", max_len=64), "from")
    _site(ctx, org)
    part = require_part(ctx, gtin, serial)
    _not_in(part, {"installed"} | GONE, "it cannot be received")
    if part.custodian == org.org_id and part.pending_to is None:
        raise PolicyRejected(f"{org.org_id} already holds part {gtin}/{serial}", code="invalid_state", field="serial")
    if part.pending_to != org.org_id:
        flag(ctx, part, "custody_gap", f"{org.org_id} received the part without a recorded shipment to it "
             f"(last custodian: {part.custodian or 'none'})")
    part.state, part.custodian, part.pending_to = "received", org.org_id, None
    record_event(ctx, part)


@handles("part.return")
def return_part(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, _part_fields("to"), {"reason_code", "site"})
    gtin, serial = read_part_ref(body)
    org = _holder(ctx)
    to = require_org(ctx, get_str(body, "to", max_len=64), "to")
    if to.kind not in {"oem", "supplier", "recycler"}:
        raise PolicyRejected(f"body.to: parts are returned to an OEM, supplier or recycler, not a {to.kind}",
                             code="role_forbidden", field="to")
    if body.get("reason_code") is not None:
        read_code(body, "reason_code")
    _site(ctx, org)
    part = require_part(ctx, gtin, serial)
    _must_hold(ctx, part)
    _not_in(part, {"installed"} | GONE, "it cannot be returned")
    part.state, part.pending_to = "returned", to.org_id
    record_event(ctx, part)


# --- in a vehicle ------------------------------------------------------------------------------------
@handles("part.install")
def install(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, _part_fields("vehicle"), {"site", "technician", "odometer_km"})
    gtin, serial = read_part_ref(body)
    vehicle = read_vehicle(body)
    if "odometer_km" in body:
        get_int(body, "odometer_km", minimum=0, maximum=10_000_000)
    org = require_kind(ctx, "workshop")
    site = _site(ctx, org)
    technician = _technician(body)
    part = require_part(ctx, gtin, serial)
    r = repo(ctx)
    fitted = r.open_installations(gtin, serial)
    if any(i.vehicle == vehicle for i in fitted):
        raise PolicyRejected(f"part {gtin}/{serial} is already installed in vehicle {vehicle}", code="invalid_state",
                             field="vehicle")
    if fitted:
        flag(ctx, part, "clone_suspected", f"installed by {org.org_id} in a second vehicle while still recorded "
             f"in another (installed at seq {fitted[-1].seq}): clone suspected")
        part.suspect = True
    if part.state == "scrapped":
        flag(ctx, part, "scrapped_reinstalled", f"{org.org_id} installed a part recorded as scrapped")
        part.suspect = True
    elif part.state in {"collected", "recycled", "repurposed"}:
        flag(ctx, part, "recycled_reinstalled", f"{org.org_id} installed a part recorded as {part.state}")
        part.suspect = True
    for recall in open_recalls_for(ctx, part):
        flag(ctx, part, "recalled_installed", f"{org.org_id} installed a part under open recall "
             f"{recall.campaign_id}")
    verdict = authz.judge(r, workshop=org, part=part, activity="install", seq=ctx.seq, logged=ctx.logged,
                          site=site, technician=technician)
    if not verdict.authorized:
        flag(ctx, part, authz.FLAG_FOR_STATUS[verdict.status], verdict.message)
    r.add(Installation(seq=ctx.seq, gtin=gtin, serial=serial, lot=part.lot, vehicle=vehicle, workshop=org.org_id,
                       site=site, logged=ctx.logged, authorization=verdict.status, grant_id=verdict.grant_id))
    part.state, part.vehicle, part.custodian, part.pending_to = "installed", vehicle, None, None
    part.installed_by, part.installed_seq = org.org_id, ctx.seq
    if part.first_installed_at is None:
        part.first_installed_at = ctx.logged
    record_event(ctx, part, authorization=verdict.status, grant_id=verdict.grant_id)


@handles("part.remove")
def remove(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, _part_fields(), {"vehicle", "site", "technician", "reason_code"})
    gtin, serial = read_part_ref(body)
    vehicle = read_vehicle(body) if body.get("vehicle") is not None else None
    if body.get("reason_code") is not None:
        read_code(body, "reason_code")
    org = require_kind(ctx, "workshop")
    site = _site(ctx, org)
    part = require_part(ctx, gtin, serial)
    r = repo(ctx)
    fitted = list(r.open_installations(gtin, serial))
    chosen = [i for i in fitted if vehicle is None or i.vehicle == vehicle]
    if not chosen:
        where = f"in vehicle {vehicle}" if vehicle else "in any vehicle"
        raise PolicyRejected(f"part {gtin}/{serial} is not installed {where}", code="invalid_state", field="serial")
    verdict = _authorize(ctx, org, part, "remove", site, _technician(body))
    out = chosen[-1]
    out.removed_seq = ctx.seq
    r.save(out)
    rest = [i for i in fitted if i is not out]
    if rest:
        part.vehicle = rest[-1].vehicle
    else:
        part.state, part.vehicle, part.custodian = "removed", None, org.org_id
    record_event(ctx, part, authorization=verdict.status if verdict else None,
                 grant_id=verdict.grant_id if verdict else None)


# --- service -------------------------------------------------------------------------------------------
def _service(ctx: Context, activity: str, kinds: tuple[str, ...]) -> None:
    body = ctx.entry.body
    require_keys(body, _part_fields("result"), {"code", "documents", "site", "technician"})
    gtin, serial = read_part_ref(body)
    result = body.get("result")
    if result not in ("pass", "fail"):
        raise InvalidInput("body.result: expected 'pass' or 'fail'", code="invalid_body", field="result")
    if body.get("code") is not None:
        read_code(body, "code")
    read_documents(body)
    org = require_kind(ctx, *kinds)
    site = _site(ctx, org)
    part = require_part(ctx, gtin, serial)
    _seen_retired(ctx, part)
    verdict = _authorize(ctx, org, part, activity, site, _technician(body))
    part.attributes = {**part.attributes, f"last_{activity}": {"seq": ctx.seq, "result": result}}
    record_event(ctx, part, authorization=verdict.status if verdict else None,
                 grant_id=verdict.grant_id if verdict else None)


@handles("part.inspect")
def inspect(ctx: Context) -> None:
    _service(ctx, "inspect", ("workshop", "test_lab", "oem", "recycler", "authority"))


@handles("part.repair")
def repair(ctx: Context) -> None:
    _service(ctx, "repair", ("workshop", "oem", "supplier"))


# --- end of life ---------------------------------------------------------------------------------------
@handles("part.scrap")
def scrap(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, _part_fields(), {"reason_code", "site"})
    gtin, serial = read_part_ref(body)
    if body.get("reason_code") is not None:
        read_code(body, "reason_code")
    org = _holder(ctx)
    _site(ctx, org)
    part = require_part(ctx, gtin, serial)
    if part.brand_owner != org.org_id:
        _must_hold(ctx, part)
    _not_in(part, {"installed", "scrapped"} | GONE, "it cannot be scrapped")
    part.state, part.pending_to = "scrapped", None
    record_event(ctx, part)


@handles("part.collect")
def collect(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, _part_fields(), {"from", "site"})
    gtin, serial = read_part_ref(body)
    org = require_kind(ctx, "recycler", "oem")
    if body.get("from") is not None:
        require_org(ctx, get_str(body, "from", max_len=64), "from")
    _site(ctx, org)
    part = require_part(ctx, gtin, serial)
    _not_in(part, {"installed", "collected"} | GONE, "it cannot be collected (remove it first if installed)")
    part.state, part.custodian, part.pending_to = "collected", org.org_id, None
    record_event(ctx, part)


@handles("part.recycle")
def recycle(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, _part_fields("recovered"), {"site", "documents"})
    gtin, serial = read_part_ref(body)
    recovered = body.get("recovered")
    if not isinstance(recovered, dict) or len(recovered) > 30 or not all(
            isinstance(k, str) and _MATERIAL_RE.match(k) and isinstance(v, int) and not isinstance(v, bool)
            and 0 <= v <= 10**9 for k, v in recovered.items()):
        raise InvalidInput("body.recovered: expected {material: grams} with up to 30 materials (lower-case names, "
                           "integer grams ≥ 0)", code="invalid_body", field="recovered")
    read_documents(body)
    org = require_kind(ctx, "recycler")
    _site(ctx, org)
    part = require_part(ctx, gtin, serial)
    _must_hold(ctx, part)
    _not_in(part, {"installed"} | GONE, "it cannot be recycled")
    part.state, part.pending_to = "recycled", None
    part.attributes = {**part.attributes, "recovered_g": dict(recovered)}
    record_event(ctx, part)


@handles("part.repurpose")
def repurpose(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, _part_fields("new_gtin", "new_serial"),
                 {"category", "lot", "warranty_months", "site", "part_sig"})
    gtin, serial = read_part_ref(body)
    new_gtin = validate_gtin(body.get("new_gtin"), field="body.new_gtin")
    new_serial = validate_serial(body.get("new_serial"), field="body.new_serial")
    org = require_kind(ctx, "recycler", "oem", "supplier")
    _site(ctx, org)
    part = require_part(ctx, gtin, serial)
    _must_hold(ctx, part)
    _not_in(part, {"installed"} | GONE, "it cannot be repurposed")
    category = body.get("category", part.category)
    if category not in CATEGORIES:
        raise InvalidInput(f"body.category: expected one of {', '.join(CATEGORIES)}", code="invalid_body",
                           field="category")
    lot = validate_lot(body["lot"], field="body.lot") if body.get("lot") is not None else None
    months = get_int(body, "warranty_months", minimum=0, maximum=240) if "warranty_months" in body \
        else DEFAULT_WARRANTY_MONTHS
    owner = commission_owner(ctx, org, new_gtin)
    check_part_sig(ctx, org, new_gtin, new_serial)  # the new identity's label signature, as at commissioning
    r = repo(ctx)
    if r.get_part(new_gtin, new_serial) is not None:
        raise Conflict(f"part {new_gtin}/{new_serial} is already commissioned", code="duplicate_serial",
                       field="new_serial")
    attributes: dict[str, Any] = {"second_life": True}
    if "battery" in part.attributes:
        attributes["battery"] = dict(part.attributes["battery"])
    successor = Part(gtin=new_gtin, serial=new_serial, lot=lot, category=str(category), brand=owner,
                     brand_owner=owner, commissioned_by=org.org_id, commissioned_seq=ctx.seq,
                     commissioned_kid=ctx.entry.kid, state="commissioned", custodian=org.org_id,
                     warranty_months=months, predecessor=part_key(gtin, serial), soh_pct=part.soh_pct,
                     attributes=attributes, last_seq=ctx.seq)
    r.add(successor)
    part.state, part.successor, part.pending_to = "repurposed", part_key(new_gtin, new_serial), None
    record_event(ctx, part)
    record_event(ctx, successor)
