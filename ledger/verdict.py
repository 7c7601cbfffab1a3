"""The scan verdict: what a technician is told about a part, and why (pure functions, no I/O).

Five verdicts, from worst to best, each with a list of coded reasons:

``suspect``
    Evidence that this physical label or part is not what it claims: the AI
    8030 signature does not verify, the label's lot differs from the ledger's,
    the part was signed with a key revoked as compromised, or an open flag
    says clone / reinstalled-after-scrap. *Do not fit it.*
``retired``
    The ledger says the part left service (scrapped, collected for recycling,
    recycled, or superseded by a repurposed identity). A retired serial in a
    workshop is itself suspicious; the scan is flagged.
``recalled``
    An open recall campaign covers this GTIN and lot or serial.
``unknown``
    The ledger has no such part, or (offline) the evidence needed to say more
    is missing or stale: no signature on the label, an expired trust bundle.
``genuine``
    Commissioned by the org entitled to the GTIN, signature valid, no recall,
    not retired, no open authenticity flags.

The most severe applicable verdict wins (``suspect`` > ``retired`` >
``recalled`` > ``unknown`` > ``genuine``); every applicable reason is listed
so the page and the JSON show all facts, not just the worst one.

Authorization (:func:`authorize`) answers "may *this* workshop do *this*
activity on *this* part now, and under which grant?" from a list of grants;
the server uses the domain's projection of the same rule, the offline
verifier uses this function over the trust bundle's grants.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ledger.gs1 import gtin_has_prefix

Verdict = Literal["genuine", "unknown", "suspect", "recalled", "retired"]
Severity = Literal["info", "warning", "critical"]
SigStatus = Literal["valid", "invalid", "missing", "unknown_key", "not_checked"]

VERDICTS: tuple[Verdict, ...] = ("suspect", "retired", "recalled", "unknown", "genuine")  # worst first
RETIRED_STATES = frozenset({"scrapped", "collected", "recycled", "repurposed"})
#: Open flag kinds that are evidence against authenticity (the others are shown as warnings).
SUSPECT_FLAG_KINDS = frozenset({
    "clone_suspected", "duplicate_install", "installed_elsewhere", "retired_part_seen", "scrapped_reinstalled",
    "recycled_reinstalled", "compromised_key", "key_compromised", "suspect",
})

REASON_TEXT: dict[str, str] = {
    "not_commissioned": "The ledger has no part with this GTIN and serial.",
    "signature_valid": "The label's signature (AI 8030) verifies with the commissioning org's key.",
    "signature_missing": "The label carries no signature (AI 8030); it cannot be checked offline.",
    "signature_invalid": "The label's signature (AI 8030) does not verify: the label was not issued by the "
                         "commissioning org.",
    "signature_unknown_key": "No key of an org entitled to this GTIN verifies the label's signature.",
    "key_compromised": "The part was signed with a key later revoked as compromised.",
    "lot_mismatch": "The label's lot differs from the lot recorded at commissioning.",
    "flag": "An open flag on this part.",
    "recalled": "An open recall campaign covers this part.",
    "retired": "The ledger records this part as out of service.",
    "installed": "The part is recorded as installed in a vehicle.",
    "bundle_expired": "The offline trust bundle has expired; recalls and revocations may be missing.",
    "no_org_for_gtin": "No registered org holds the GS1 company prefix of this GTIN.",
}


@dataclass(frozen=True)
class Reason:
    """One coded fact behind a verdict."""

    code: str
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        # As dataclasses.asdict would give (same keys, same order), at a fraction of its cost on the scan path.
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "details": {k: list(v) if isinstance(v, list | tuple) else v for k, v in self.details.items()}}


@dataclass(frozen=True)
class FlagFact:
    kind: str
    message: str
    seq: int


@dataclass(frozen=True)
class RecallFact:
    campaign_id: str
    reason: str | None = None
    seq: int | None = None


@dataclass(frozen=True)
class PartFacts:
    """What the ledger (or a trust bundle) says about a part, reduced to what the verdict needs."""

    gtin: str
    serial: str
    state: str
    commissioned_by: str
    lot: str | None = None
    open_flags: tuple[FlagFact, ...] = ()
    recalls: tuple[RecallFact, ...] = ()
    key_compromised: bool = False


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reasons: tuple[Reason, ...]

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": [r.to_json() for r in self.reasons]}


def _reason(code: str, severity: Severity, message: str | None = None, **details: Any) -> Reason:
    return Reason(code=code, severity=severity, message=message or REASON_TEXT[code], details=details)


def _worst(candidates: Iterable[Verdict]) -> Verdict:
    found = set(candidates)
    for verdict in VERDICTS:
        if verdict in found:
            return verdict
    return "genuine"


def signature_reason(sig: SigStatus) -> tuple[Verdict, Reason] | None:
    """The verdict and reason a label signature check contributes (``None`` if it was not checked)."""
    if sig == "valid":
        return "genuine", _reason("signature_valid", "info")
    if sig == "missing":
        return "unknown", _reason("signature_missing", "warning")
    if sig == "invalid":
        return "suspect", _reason("signature_invalid", "critical")
    if sig == "unknown_key":
        return "suspect", _reason("signature_unknown_key", "critical")
    return None


def judge(facts: PartFacts | None, *, sig: SigStatus, label_lot: str | None = None,
          online: bool = True, extra: Sequence[tuple[Verdict, Reason]] = ()) -> Judgement:
    """Decide the verdict for a scanned label.

    ``facts`` is ``None`` when the ledger has no such part. Online, the ledger
    record is the authority, so a missing label signature is a warning, not a
    verdict; offline (``online=False``) a missing signature leaves the part
    ``unknown``, because nothing else proves the label came from its maker.
    ``extra`` lets the caller add findings (e.g. an expired bundle).
    """
    found: list[tuple[Verdict, Reason]] = list(extra)
    sig_part = signature_reason(sig)
    if sig_part is not None:
        verdict, reason = sig_part
        if online and sig == "missing":
            verdict = "genuine"
        found.append((verdict, reason))
    if facts is None:
        if online:
            found.append(("unknown", _reason("not_commissioned", "warning")))
    else:
        if facts.key_compromised:
            found.append(("suspect", _reason("key_compromised", "critical")))
        if label_lot is not None and facts.lot is not None and label_lot != facts.lot:
            found.append(("suspect", _reason("lot_mismatch", "critical", label_lot=label_lot, ledger_lot=facts.lot)))
        for flag in facts.open_flags:
            critical = flag.kind in SUSPECT_FLAG_KINDS
            found.append(("suspect" if critical else "genuine",
                          _reason("flag", "critical" if critical else "warning", flag.message, kind=flag.kind,
                                  seq=flag.seq)))
        if facts.state in RETIRED_STATES:
            found.append(("retired", _reason("retired", "critical", state=facts.state)))
        for recall in facts.recalls:
            found.append(("recalled", _reason("recalled", "critical", campaign_id=recall.campaign_id,
                                              recall_reason=recall.reason)))
        if facts.state == "installed":
            found.append(("genuine", _reason("installed", "info")))
    verdict = _worst(v for v, _ in found) if found else "unknown"
    order = {"critical": 0, "warning": 1, "info": 2}
    reasons = tuple(sorted((r for _, r in found), key=lambda r: order[r.severity]))
    return Judgement(verdict=verdict, reasons=reasons)


# authorization ------------------------------------------------------------------

@dataclass(frozen=True)
class GrantFacts:
    """A workshop grant reduced to what an authorization decision needs."""

    grant_id: str
    grantor: str
    grantee: str
    activities: tuple[str, ...] = ()  # empty: any activity
    gtin_prefixes: tuple[str, ...] = ()  # GS1 company prefixes (matched against GTIN-14 digits 2…); empty: any
    valid_from: str | None = None  # RFC 3339 UTC
    valid_until: str | None = None
    status: str = "active"  # active | suspended | revoked


@dataclass(frozen=True)
class Authorization:
    """The answer to "may this workshop do this to this part now?"."""

    workshop: str
    activity: str
    authorized: bool
    grant_id: str | None
    status: str  # authorized | independent | suspended | revoked | expired | out_of_scope
    message: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def gtin_matches_prefix(gtin: str, prefix: str) -> bool:
    """True if company prefix ``prefix`` issued ``gtin`` (the domain's rule, :func:`ledger.gs1.gtin_has_prefix`)."""
    return gtin_has_prefix(gtin, prefix)


def _in_scope(grant: GrantFacts, gtin: str, activity: str) -> bool:
    activity_ok = not grant.activities or activity in grant.activities
    prefix_ok = not grant.gtin_prefixes or any(gtin_matches_prefix(gtin, p) for p in grant.gtin_prefixes)
    return activity_ok and prefix_ok


def authorize(grants: Iterable[GrantFacts], *, workshop: str, gtin: str, activity: str, now: str) -> Authorization:
    """Judge ``workshop``'s right to ``activity`` on a part of ``gtin`` at time ``now`` (RFC 3339 UTC).

    An active, in-scope, in-date grant authorizes. Otherwise the most telling
    reason is reported: a revoked or suspended grant that would have covered
    it, an expired one, one out of scope, or none at all — in which case the
    workshop is *independent*: right-to-repair law lets it work, it is just
    not authorized by the brand.
    """
    mine = [g for g in grants if g.grantee == workshop]
    scoped = [g for g in mine if _in_scope(g, gtin, activity)]
    for grant in scoped:
        in_date = (grant.valid_from is None or grant.valid_from <= now) and (
            grant.valid_until is None or now < grant.valid_until)
        if grant.status == "active" and in_date:
            return Authorization(workshop, activity, True, grant.grant_id, "authorized",
                                 f"authorized by grant {grant.grant_id} from {grant.grantor}")
    for status in ("revoked", "suspended"):
        for grant in scoped:
            if grant.status == status:
                return Authorization(workshop, activity, False, grant.grant_id, status,
                                     f"grant {grant.grant_id} from {grant.grantor} is {status}")
    for grant in scoped:
        return Authorization(workshop, activity, False, grant.grant_id, "expired",
                             f"grant {grant.grant_id} is not valid at {now}")
    if mine:
        return Authorization(workshop, activity, False, None, "out_of_scope",
                             f"no grant of {workshop} covers {activity} on GTIN {gtin}")
    return Authorization(workshop, activity, False, None, "independent",
                         f"{workshop} holds no grant: it may work as an independent workshop, unauthorized by the "
                         "brand")


__all__ = [
    "RETIRED_STATES",
    "SUSPECT_FLAG_KINDS",
    "VERDICTS",
    "Authorization",
    "FlagFact",
    "GrantFacts",
    "Judgement",
    "PartFacts",
    "Reason",
    "RecallFact",
    "SigStatus",
    "Verdict",
    "authorize",
    "gtin_matches_prefix",
    "judge",
]
