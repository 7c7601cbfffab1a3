"""Grants (SPEC §4.2): an OEM gives a supplier commission rights or a workshop scoped, time-bounded rights.

Body of ``grant.issue``::

    {"grant_id": "g-oslo-1", "kind": "workshop" | "commission", "grantee": "<org id>",
     "activities": [...], "gtin_prefixes": [...], "brands": [...], "categories": [...],
     "countries": ["NO"], "sites": ["<GLN>"], "technicians": ["tech-17"],
     "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z"}

Only an OEM issues grants, and only over its own GS1 company prefixes (an
empty ``gtin_prefixes`` means all of them). A commission grant goes to a
supplier and covers prefixes only; a workshop grant goes to a workshop and
names at least one activity. ``valid_until`` must be after ``valid_from``
(``invalid_period``). ``grant.suspend`` / ``grant.resume`` / ``grant.revoke``
(``{"grant_id", "reason"?}``) are written by the grantor; a revoked grant
stays revoked.
"""

from __future__ import annotations

import re

from ledger.domain.body import COUNTRY_RE, get_opt_str, get_str_list, require_keys
from ledger.domain.common import ACTIVITIES, CATEGORIES, handles, read_code, read_id, repo, require_kind, require_org
from ledger.domain.registry import Context
from ledger.entries import format_time, parse_time
from ledger.errors import Conflict, InvalidInput, NotFound, PolicyRejected
from ledger.gs1 import validate_gln
from ledger.storage.grant_tables import Grant, GrantChange

GRANT_KINDS = ("workshop", "commission")
PREFIX_RE = re.compile(r"^\d{6,12}$")
_SCOPE_FIELDS = {"activities", "gtin_prefixes", "brands", "categories", "countries", "sites", "technicians"}


def _time(body: dict[str, object], name: str) -> str:
    return format_time(parse_time(body.get(name), field=f"body.{name}"))


@handles("grant.issue")
def issue(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, {"grant_id", "kind", "grantee", "valid_from"}, _SCOPE_FIELDS | {"valid_until"})
    oem = require_kind(ctx, "oem")
    grant_id = read_id(body, "grant_id")
    kind = body["kind"]
    if kind not in GRANT_KINDS:
        raise InvalidInput(f"body.kind: expected one of {', '.join(GRANT_KINDS)}", code="invalid_body", field="kind")
    grantee = require_org(ctx, read_id(body, "grantee"), "grantee")
    wanted = "workshop" if kind == "workshop" else "supplier"
    if grantee.kind != wanted:
        raise PolicyRejected(f"a {kind} grant goes to a {wanted}; {grantee.org_id} is a {grantee.kind}",
                             code="role_forbidden", field="grantee")
    valid_from = _time(body, "valid_from")
    valid_until = _time(body, "valid_until") if body.get("valid_until") is not None else None
    if valid_until is not None and valid_until <= valid_from:
        raise InvalidInput(f"body.valid_until ({valid_until}) must be after body.valid_from ({valid_from})",
                           code="invalid_period", field="valid_until")
    prefixes = get_str_list(body, "gtin_prefixes", pattern=PREFIX_RE, what="GS1 company prefixes (6–12 digits)")
    outside = [p for p in prefixes if not any(p.startswith(own) for own in oem.gs1_prefixes)]
    if outside:
        raise PolicyRejected(f"body.gtin_prefixes: {', '.join(outside)} are not under {oem.org_id}'s GS1 company "
                             f"prefixes ({', '.join(oem.gs1_prefixes) or 'none'})", code="prefix_not_granted",
                             field="gtin_prefixes")
    activities = get_str_list(body, "activities", what=f"activities ({', '.join(ACTIVITIES)})")
    if any(a not in ACTIVITIES for a in activities):
        raise InvalidInput(f"body.activities: expected some of {', '.join(ACTIVITIES)}", code="invalid_body",
                           field="activities")
    categories = get_str_list(body, "categories", what="categories")
    if any(c not in CATEGORIES for c in categories):
        raise InvalidInput(f"body.categories: expected some of {', '.join(CATEGORIES)}", code="invalid_body",
                           field="categories")
    sites = [validate_gln(s, field="body.sites[]") for s in get_str_list(body, "sites", what="GLNs")]
    countries = get_str_list(body, "countries", pattern=COUNTRY_RE, what="ISO 3166-1 alpha-2 codes")
    brands = get_str_list(body, "brands", what="brand names")
    technicians = get_str_list(body, "technicians", what="technician ids")
    if kind == "workshop" and not activities:
        raise InvalidInput("body.activities: a workshop grant names at least one activity", code="invalid_body",
                           field="activities")
    if kind == "commission" and (activities or categories or sites or countries or brands or technicians):
        raise InvalidInput("a commission grant is scoped by gtin_prefixes and validity only", code="invalid_body",
                           field="kind")
    r = repo(ctx)
    if r.get_grant(grant_id) is not None:
        raise Conflict(f"grant {grant_id} already exists", code="conflict", field="grant_id")
    r.add(Grant(grant_id=grant_id, kind=str(kind), grantor=oem.org_id, grantee=grantee.org_id,
                activities=activities, gtin_prefixes=prefixes or list(oem.gs1_prefixes), brands=brands,
                categories=categories, countries=countries, sites=sites, technicians=technicians,
                valid_from=valid_from, valid_until=valid_until, status="active", issued_seq=ctx.seq,
                changed_seq=ctx.seq))
    r.add(GrantChange(seq=ctx.seq, grant_id=grant_id, status="active"))


def _change(ctx: Context, new_status: str, allowed_from: tuple[str, ...]) -> None:
    body = ctx.entry.body
    require_keys(body, {"grant_id"}, {"reason"})
    require_kind(ctx, "oem")
    grant_id = read_id(body, "grant_id")
    reason = read_code(body, "reason") if body.get("reason") is not None else None
    get_opt_str(body, "reason", max_len=32)
    r = repo(ctx)
    grant = r.get_grant(grant_id)
    if grant is None:
        raise NotFound(f"grant {grant_id} does not exist", code="unknown_grant", field="grant_id")
    if grant.grantor != ctx.entry.org:
        raise PolicyRejected(f"only the grantor ({grant.grantor}) changes grant {grant_id}", code="not_authorized",
                             field="grant_id")
    if grant.status not in allowed_from:
        raise PolicyRejected(f"grant {grant_id} is {grant.status}; {ctx.entry.type} applies to a grant that is "
                             f"{' or '.join(allowed_from)}", code="invalid_state", field="grant_id")
    grant.status = new_status
    grant.changed_seq = ctx.seq
    r.save(grant)
    r.add(GrantChange(seq=ctx.seq, grant_id=grant_id, status=new_status, reason=reason))


@handles("grant.suspend")
def suspend(ctx: Context) -> None:
    _change(ctx, "suspended", ("active",))


@handles("grant.resume")
def resume(ctx: Context) -> None:
    _change(ctx, "active", ("suspended",))


@handles("grant.revoke")
def revoke(ctx: Context) -> None:
    _change(ctx, "revoked", ("active", "suspended"))
