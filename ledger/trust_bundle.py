"""The offline trust bundle: what a phone in a basement workshop needs to judge a QR with no network.

A bundle is a JSON document, canonicalised with RFC 8785 and signed by the
*log key* with purpose ``trust-bundle`` (:mod:`ledger.keys`), so a client
that pinned the log's verifier key once (``GET /v1/log/key``) can check it::

    {"bundle": {...}, "signature": "<base64 Ed25519>", "verifier_key": "<C2SP note verifier key>"}

The inner ``bundle`` holds:

- ``format`` (``partsledger-trust-bundle/v1``), ``origin`` of the log;
- ``version``: the log size the bundle was built from (monotonic: a client
  keeps the newest version it has seen and refuses an older one);
- ``issued_at`` and ``expires_at`` (RFC 3339 UTC): after ``expires_at`` the
  bundle still verifies signatures but every verdict says ``bundle_expired``
  and becomes ``unknown``, because recalls and revocations may be missing;
- ``checkpoint``: the latest signed checkpoint (C2SP note) at ``version``;
- ``orgs``: id, kind, GS1 company prefixes and every key with its
  ``revoked_seq`` and ``compromised_at``;
- ``grants``: workshop and supplier grants with scope, validity and status;
- ``recalls``: open recall campaigns by GTIN with lots and serial ranges;
- ``products``: per commissioned GTIN, the ``brands``, ``categories`` and
  ``brand_owners`` recorded for its parts, so that a grant's brand and
  category scope can be judged offline.

:func:`offline_verdict` turns a QR URI + bundle + the current time into a
verdict with no network and no database. Its workshop authorization
(:func:`offline_authorization`) applies the domain's rule
(:mod:`ledger.domain.authz`) to the bundle's grants: the brand owner's
workshop grants to that workshop, each judged on activity, GTIN prefix,
brand, category, the workshop's country, site and technician (a scan names
neither, so a grant limited to sites or technicians does not cover it, as on
the server), then status (revoked, suspended) and validity at the device's
time; the best outcome wins, else the most telling refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.canonical import canonical_bytes
from ledger.checkpoint import Checkpoint, verify_checkpoint
from ledger.digital_link import PartLink, parse_uri, verify_part_sig
from ledger.errors import InvalidInput, ProofError, SignatureError
from ledger.keys import b64decode, b64encode, signed_message
from ledger.note import Signer, Verifier, parse_verifier_key
from ledger.verdict import (
    Authorization,
    GrantFacts,
    Judgement,
    PartFacts,
    Reason,
    RecallFact,
    SigStatus,
    Verdict,
    gtin_matches_prefix,
    judge,
)

FORMAT = "partsledger-trust-bundle/v1"
DEFAULT_TTL = timedelta(days=7)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_bundle(*, origin: str, version: int, checkpoint: str, orgs: Sequence[dict[str, Any]],
                 grants: Sequence[dict[str, Any]], recalls: Sequence[dict[str, Any]], now: datetime,
                 ttl: timedelta = DEFAULT_TTL, products: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The inner bundle document (unsigned). Lists are sorted so equal state gives equal bytes."""
    return {
        "format": FORMAT,
        "origin": origin,
        "version": version,
        "issued_at": _rfc3339(now),
        "expires_at": _rfc3339(now + ttl),
        "checkpoint": checkpoint,
        "orgs": sorted(orgs, key=lambda o: str(o["org_id"])),
        "grants": sorted(grants, key=lambda g: str(g["grant_id"])),
        "recalls": sorted(recalls, key=lambda r: (str(r["campaign_id"]), str(r["gtin"]))),
        "products": sorted(products, key=lambda p: str(p["gtin"])),
    }


def sign_bundle(bundle: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """Wrap ``bundle`` in its signed envelope, signed by the log's key with purpose ``trust-bundle``."""
    payload = canonical_bytes(bundle)
    signature = signer.sign(signed_message("trust-bundle", payload))
    return {"bundle": bundle, "signature": b64encode(signature), "verifier_key": signer.verifier_key()}


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signature and checkpoint verified against the pinned log key."""

    bundle: dict[str, Any]
    checkpoint: Checkpoint
    expired: bool
    age_seconds: int

    @property
    def version(self) -> int:
        return int(self.bundle["version"])


def _parse_time(value: object, name: str) -> datetime:
    if not isinstance(value, str) or not value.endswith("Z"):
        raise InvalidInput(f"bundle.{name}: expected an RFC 3339 UTC time", code="invalid_time", field=name)
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"bundle.{name}: expected an RFC 3339 UTC time", code="invalid_time", field=name) from None


def verify_bundle(envelope: dict[str, Any], log_verifier_key: str, *, now: datetime,
                  min_version: int = 0) -> VerifiedBundle:
    """Check a bundle envelope against the *pinned* log verifier key; raise on any mismatch.

    The key embedded in the envelope is only a hint: trust comes from
    ``log_verifier_key``, obtained out of band. ``min_version`` is the newest
    version this client has already seen (a rollback to an older bundle is refused).
    """
    verifier: Verifier = parse_verifier_key(log_verifier_key)
    if not isinstance(envelope, dict) or not isinstance(envelope.get("bundle"), dict):
        raise InvalidInput("trust bundle: expected {bundle, signature, verifier_key}", code="invalid_body",
                           field="bundle")
    bundle: dict[str, Any] = envelope["bundle"]
    signature = b64decode(envelope.get("signature"), field="signature", size=64)  # type: ignore[arg-type]
    if not verifier.verify(signed_message("trust-bundle", canonical_bytes(bundle)), signature):
        raise SignatureError("trust bundle signature does not verify with the pinned log key",
                             code="bad_signature", field="signature")
    if bundle.get("format") != FORMAT:
        raise InvalidInput(f"trust bundle format must be {FORMAT}", code="unsupported_version", field="format")
    if bundle.get("origin") != verifier.name:
        raise InvalidInput("trust bundle origin differs from the pinned log", code="wrong_origin", field="origin")
    checkpoint = verify_checkpoint(str(bundle.get("checkpoint", "")), verifier, origin=verifier.name)
    version = bundle.get("version")
    if not isinstance(version, int) or version != checkpoint.size:
        raise ProofError("trust bundle version must equal its checkpoint's tree size", code="bad_checkpoint",
                         field="version")
    if version < min_version:
        raise ProofError(f"trust bundle version {version} is older than version {min_version} already seen",
                         code="log_shrunk", field="version")
    issued = _parse_time(bundle.get("issued_at"), "issued_at")
    expires = _parse_time(bundle.get("expires_at"), "expires_at")
    return VerifiedBundle(bundle=bundle, checkpoint=checkpoint, expired=now >= expires,
                          age_seconds=max(0, int((now - issued).total_seconds())))


@dataclass(frozen=True)
class OfflineResult:
    """An offline verdict, with how old the data behind it is."""

    link: PartLink
    judgement: Judgement
    signed_by: str | None
    authorization: Authorization | None
    bundle_version: int
    bundle_age_seconds: int
    bundle_expired: bool

    @property
    def verdict(self) -> Verdict:
        return self.judgement.verdict

    def to_json(self) -> dict[str, Any]:
        return {
            **self.judgement.to_json(),
            "part": {"gtin": self.link.gtin, "serial": self.link.serial, "lot": self.link.lot},
            "signed_by": self.signed_by,
            "authorization": None if self.authorization is None else self.authorization.to_json(),
            "bundle": {"version": self.bundle_version, "age_seconds": self.bundle_age_seconds,
                       "expired": self.bundle_expired},
        }


def _entitled_orgs(bundle: dict[str, Any], gtin: str) -> list[dict[str, Any]]:
    """Orgs that may have commissioned ``gtin``: the prefix holder and suppliers granted that prefix."""
    owners = {o["org_id"] for o in bundle["orgs"] if any(gtin_matches_prefix(gtin, p) for p in o["gs1_prefixes"])}
    for grant in bundle["grants"]:
        if grant.get("kind") == "commission" and grant.get("grantor") in owners and (
                not grant.get("gtin_prefixes") or any(gtin_matches_prefix(gtin, p) for p in grant["gtin_prefixes"])):
            owners.add(grant["grantee"])
    return [o for o in bundle["orgs"] if o["org_id"] in owners]


def _check_signature(bundle: dict[str, Any], link: PartLink) -> tuple[SigStatus, str | None, bool]:
    """``(status, signing org, signed with a compromised key)`` for the label's AI 8030 value."""
    if link.sig is None:
        return "missing", None, False
    orgs = _entitled_orgs(bundle, link.gtin)
    for org in orgs:
        for key in org["keys"]:
            try:
                verify_part_sig(b64decode(key["public_key"], field="public_key", size=32), link.gtin, link.serial,
                                link.sig)
            except SignatureError:
                continue
            return "valid", str(org["org_id"]), key.get("compromised_at") is not None
    return ("invalid" if orgs else "unknown_key"), None, False


def _recalls_for(bundle: dict[str, Any], link: PartLink) -> tuple[RecallFact, ...]:
    found: list[RecallFact] = []
    for recall in bundle["recalls"]:
        if recall["gtin"] != link.gtin:
            continue
        lots = recall.get("lots") or []
        ranges = recall.get("serial_ranges") or []
        serials = recall.get("serials") or []
        # Same rule as the domain (ledger.domain.recalls.covers): a range covers serials of its length.
        hit = (not lots and not ranges and not serials) or (link.lot is not None and link.lot in lots) or (
            link.serial in serials) or any(len(r[0]) == len(link.serial) and r[0] <= link.serial <= r[1]
                                           for r in ranges)
        if hit:
            found.append(RecallFact(campaign_id=str(recall["campaign_id"]), reason=recall.get("reason")))
    return tuple(found)


def grant_facts(raw: dict[str, Any]) -> GrantFacts:
    return GrantFacts(grant_id=str(raw["grant_id"]), grantor=str(raw["grantor"]), grantee=str(raw["grantee"]),
                      activities=tuple(raw.get("activities") or ()),
                      gtin_prefixes=tuple(raw.get("gtin_prefixes") or ()),
                      valid_from=raw.get("valid_from"), valid_until=raw.get("valid_until"),
                      status=str(raw.get("status", "active")))


_SCOPE_ORDER = ("activity", "gtin_prefix", "brand", "category", "country", "site", "technician")


def _product(bundle: dict[str, Any], gtin: str) -> dict[str, Any] | None:
    for product in bundle.get("products") or ():
        if isinstance(product, dict) and product.get("gtin") == gtin:
            return product
    return None


def _brand_owners(bundle: dict[str, Any], gtin: str, product: dict[str, Any] | None) -> set[str]:
    """Who owns the brand of ``gtin``: as recorded for its parts, else the holder of the longest prefix."""
    if product and product.get("brand_owners"):
        return {str(o) for o in product["brand_owners"]}
    best: list[tuple[int, str]] = [(max(len(p) for p in o["gs1_prefixes"] if gtin_matches_prefix(gtin, p)),
                                    str(o["org_id"])) for o in bundle["orgs"]
                                   if any(gtin_matches_prefix(gtin, p) for p in o.get("gs1_prefixes") or ())]
    if not best:
        return set()
    longest = max(n for n, _ in best)
    return {org for n, org in best if n == longest}


def _covers(allowed: Sequence[Any], values: Sequence[Any] | None) -> bool:
    """An empty grant list means any; otherwise every recorded value must be allowed (unknown: not covered)."""
    if not allowed:
        return True
    return bool(values) and all(v in allowed for v in values or ())


def grant_scope_misses(grant: dict[str, Any], *, gtin: str, activity: str, workshop_country: str | None,
                       product: dict[str, Any] | None, site: str | None = None,
                       technician: str | None = None) -> list[str]:
    """The scope dimensions of a bundle grant that do not cover this act (as :func:`ledger.domain.authz.scope_misses`).

    Brand and category come from the bundle's ``products`` entry for the GTIN
    (every brand and category recorded for it must be covered); a GTIN the
    bundle does not list cannot be shown to be inside a brand or category scope.
    """
    misses = []
    if activity not in (grant.get("activities") or ()):
        misses.append("activity")
    prefixes = grant.get("gtin_prefixes") or ()
    if prefixes and not any(gtin_matches_prefix(gtin, p) for p in prefixes):
        misses.append("gtin_prefix")
    if not _covers(grant.get("brands") or (), (product or {}).get("brands")):
        misses.append("brand")
    if not _covers(grant.get("categories") or (), (product or {}).get("categories")):
        misses.append("category")
    countries = grant.get("countries") or ()
    if countries and workshop_country not in countries:
        misses.append("country")
    if grant.get("sites") and site not in grant["sites"]:
        misses.append("site")
    if grant.get("technicians") and technician not in grant["technicians"]:
        misses.append("technician")
    return misses


def offline_authorization(bundle: dict[str, Any], *, workshop: str, gtin: str, activity: str,
                          now: str) -> Authorization:
    """``workshop``'s right to ``activity`` on a part of ``gtin`` at ``now``, judged from the bundle alone.

    The same rule and the same order of outcomes as the server
    (:func:`ledger.domain.authz.judge`): ``authorized``; else ``revoked``,
    ``suspended``, ``expired`` for a grant that would have covered it; else
    ``out_of_scope`` naming the dimensions the closest grant misses; else
    ``independent``. An org the bundle does not know is ``unknown_org``.
    """
    org = next((o for o in bundle["orgs"] if o.get("org_id") == workshop), None)
    if org is None:
        return Authorization(workshop, activity, False, None, "unknown_org",
                             f"{workshop} is not a registered org (as of trust bundle v{bundle.get('version')})")
    product = _product(bundle, gtin)
    owners = _brand_owners(bundle, gtin, product)
    owner_text = " or ".join(sorted(owners)) or "the brand owner"
    grants = [g for g in bundle["grants"] if g.get("kind", "workshop") == "workshop"
              and g.get("grantee") == workshop and g.get("grantor") in owners]
    if not grants:
        return Authorization(workshop, activity, False, None, "independent",
                             f"{workshop} holds no grant from {owner_text}: recorded as an independent workshop "
                             "(right to repair)")
    best_miss: tuple[dict[str, Any], list[str]] | None = None
    refusals: dict[str, dict[str, Any]] = {}
    for grant in grants:
        misses = grant_scope_misses(grant, gtin=gtin, activity=activity, workshop_country=org.get("country"),
                                    product=product)
        if misses:
            if best_miss is None or len(misses) < len(best_miss[1]):
                best_miss = (grant, misses)
            continue
        status = str(grant.get("status") or "active")
        if status != "active":
            refusals.setdefault(status, grant)
            continue
        valid_from, valid_until = grant.get("valid_from"), grant.get("valid_until")
        if (valid_from is not None and not valid_from <= now) or (valid_until is not None and now >= valid_until):
            refusals.setdefault("expired", grant)
            continue
        return Authorization(workshop, activity, True, str(grant["grant_id"]), "authorized",
                             f"authorized by grant {grant['grant_id']} from {grant['grantor']}")
    for status in ("revoked", "suspended", "expired"):
        if status in refusals:
            grant = refusals[status]
            detail = f"is not valid at {now}" if status == "expired" else f"is {status}"
            return Authorization(workshop, activity, False, str(grant["grant_id"]), status,
                                 f"grant {grant['grant_id']} from {grant['grantor']} {detail}")
    assert best_miss is not None
    grant, misses = best_miss
    return Authorization(workshop, activity, False, str(grant["grant_id"]), "out_of_scope",
                         f"no grant of {workshop} from {owner_text} covers {activity} on this part (closest, "
                         f"{grant['grant_id']}, does not cover: {', '.join(misses)})")


def offline_verdict(uri: str, envelope: dict[str, Any], log_verifier_key: str, *, now: datetime,
                    workshop: str | None = None, activity: str = "install") -> OfflineResult:
    """Judge a scanned QR URI from a trust bundle alone: signature, recall, authorization, staleness.

    Raises if the bundle itself does not verify (a forged bundle is not a verdict, it is an attack).
    """
    verified = verify_bundle(envelope, log_verifier_key, now=now)
    bundle = verified.bundle
    link = parse_uri(uri)
    sig, signer_org, compromised = _check_signature(bundle, link)
    extra: list[tuple[Verdict, Reason]] = []
    if verified.expired:
        extra.append(("unknown", Reason("bundle_expired", "critical",
                                        f"the trust bundle expired at {bundle['expires_at']}; fetch a new one",
                                        {"expires_at": bundle["expires_at"]})))
    facts = None
    if signer_org is not None:
        facts = PartFacts(gtin=link.gtin, serial=link.serial, state="unknown_offline", commissioned_by=signer_org,
                          lot=None, recalls=_recalls_for(bundle, link), key_compromised=compromised)
    elif sig == "missing":
        recalls = _recalls_for(bundle, link)
        if recalls:
            facts = PartFacts(gtin=link.gtin, serial=link.serial, state="unknown_offline", commissioned_by="",
                              recalls=recalls)
    judgement = judge(facts, sig=sig, label_lot=link.lot, online=False, extra=extra)
    authorization = None
    if workshop is not None:
        authorization = offline_authorization(bundle, workshop=workshop, gtin=link.gtin, activity=activity,
                                              now=_rfc3339(now))
    return OfflineResult(link=link, judgement=judgement, signed_by=signer_org, authorization=authorization,
                         bundle_version=verified.version, bundle_age_seconds=verified.age_seconds,
                         bundle_expired=verified.expired)


__all__ = [
    "DEFAULT_TTL",
    "FORMAT",
    "OfflineResult",
    "VerifiedBundle",
    "build_bundle",
    "grant_facts",
    "grant_scope_misses",
    "offline_authorization",
    "offline_verdict",
    "sign_bundle",
    "verify_bundle",
]
