"""Workshop authorization (SPEC §4.2): which grant, if any, covers an activity on a part at a log position.

The judgement uses only what the log says *as of* a sequence number: the
grants issued before it, their status changes before it, and the log's own
time at that record (``logged``) for the validity window — never the time a
client claims. The same function serves the live append (the handler passes
``ctx.seq`` and ``ctx.logged``) and the historical query
:func:`ledger.queries.workshop_authorization` (which passes an earlier seq and
that record's logged time), so both always agree.

Outcomes, best first: ``authorized``; otherwise the most telling refusal
among grants that would have covered it — ``revoked``, ``suspended``,
``expired`` (or not yet valid) — then ``out_of_scope`` (the workshop holds
grants from this brand owner, none covering this), and ``independent`` (no
grant at all from the brand owner: right-to-repair law lets it work).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ledger.gs1 import gtin_has_prefix
from ledger.storage.domain_repo import DomainRepo
from ledger.storage.domain_tables import Org
from ledger.storage.grant_tables import Grant
from ledger.storage.parts_tables import Part

#: Flag kind raised for an installation with each non-authorized outcome.
FLAG_FOR_STATUS = {
    "independent": "independent_service",
    "out_of_scope": "grant_out_of_scope",
    "suspended": "grant_suspended",
    "revoked": "grant_revoked",
    "expired": "grant_expired",
}


@dataclass(frozen=True)
class AuthzResult:
    status: str  # authorized | independent | out_of_scope | suspended | revoked | expired
    grant_id: str | None
    message: str
    missing: tuple[str, ...] = ()  # for out_of_scope: which dimensions did not match

    @property
    def authorized(self) -> bool:
        return self.status == "authorized"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["missing"] = list(self.missing)
        out["authorized"] = self.authorized
        return out


def scope_misses(grant: Grant, *, part: Part, activity: str, workshop: Org, site: str | None,
                 technician: str | None, ignore: frozenset[str] = frozenset()) -> list[str]:
    """The scope dimensions of ``grant`` that do not cover this act (empty: in scope).

    ``ignore`` names dimensions the caller cannot know (a query about a GTIN
    without a serial knows no category; one without a site knows no site).
    """
    misses = []
    if activity not in grant.activities:
        misses.append("activity")
    if grant.gtin_prefixes and not any(gtin_has_prefix(part.gtin, p) for p in grant.gtin_prefixes):
        misses.append("gtin_prefix")
    if grant.brands and part.brand not in grant.brands:
        misses.append("brand")
    if grant.categories and part.category not in grant.categories:
        misses.append("category")
    if grant.countries and workshop.country not in grant.countries:
        misses.append("country")
    if grant.sites and site not in grant.sites:
        misses.append("site")
    if grant.technicians and technician not in grant.technicians:
        misses.append("technician")
    return [m for m in misses if m not in ignore]


def judge(repo: DomainRepo, *, workshop: Org, part: Part, activity: str, seq: int, logged: str,
          site: str | None = None, technician: str | None = None,
          ignore: frozenset[str] = frozenset()) -> AuthzResult:
    """Judge ``workshop``'s right to ``activity`` on ``part`` as of record ``seq`` logged at ``logged``."""
    grants = [g for g in repo.list_grants(grantee=workshop.org_id, grantor=part.brand_owner, kind="workshop")
              if g.issued_seq < seq]
    if not grants:
        return AuthzResult("independent", None, f"{workshop.org_id} holds no grant from {part.brand_owner}: "
                           "recorded as an independent workshop (right to repair)")
    best_miss: tuple[Grant, list[str]] | None = None
    refusals: dict[str, Grant] = {}
    for grant in grants:
        misses = scope_misses(grant, part=part, activity=activity, workshop=workshop, site=site,
                              technician=technician, ignore=ignore)
        if misses:
            if best_miss is None or len(misses) < len(best_miss[1]):
                best_miss = (grant, misses)
            continue
        status = repo.grant_status_at(grant.grant_id, seq) or "active"
        if status != "active":
            refusals.setdefault(status, grant)
            continue
        if not grant.valid_from <= logged or (grant.valid_until is not None and logged >= grant.valid_until):
            refusals.setdefault("expired", grant)
            continue
        return AuthzResult("authorized", grant.grant_id,
                           f"authorized by grant {grant.grant_id} from {grant.grantor}")
    for status in ("revoked", "suspended", "expired"):
        if status in refusals:
            grant = refusals[status]
            detail = "is not valid at" if status == "expired" else f"was {status} before"
            when = logged if status == "expired" else f"seq {seq}"
            return AuthzResult(status, grant.grant_id, f"grant {grant.grant_id} from {grant.grantor} {detail} {when}")
    assert best_miss is not None
    grant, misses = best_miss
    return AuthzResult("out_of_scope", grant.grant_id,
                       f"no grant of {workshop.org_id} from {part.brand_owner} covers {activity} on this part "
                       f"(closest, {grant.grant_id}, does not cover: {', '.join(misses)})", tuple(misses))


__all__ = ["FLAG_FOR_STATUS", "AuthzResult", "judge", "scope_misses"]
