"""Offline verification from a signed trust bundle: no server, no database."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.digital_link import build_uri, sign_part_id
from ledger.errors import InvalidInput, ProofError, SignatureError
from ledger.keys import KeyPair, b64encode
from ledger.note import Signer
from ledger.trust_bundle import build_bundle, offline_verdict, sign_bundle, verify_bundle
from ledger.verdict import FlagFact, GrantFacts, PartFacts, RecallFact, authorize, judge

ORIGIN = "test.partsledger/log"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
OEM = KeyPair.from_seed(b"\x01" * 32)
SUPPLIER = KeyPair.from_seed(b"\x02" * 32)
OLD_KEY = KeyPair.from_seed(b"\x03" * 32)
GTIN = "06901234000016"  # company prefix 6901234 (OEM)
GTIN_B = "06901234000023"
BASE = "https://scan.partsledger.example"


def _key(pair: KeyPair, **extra: Any) -> dict[str, Any]:
    return {"kid": pair.kid, "public_key": b64encode(pair.public_key), "added_seq": 1, "revoked_seq": None,
            "compromised_at": None, **extra}


def _bundle(signer: Signer, *, now: datetime = NOW, version: int = 40, **changes: Any) -> dict[str, Any]:
    checkpoint = sign_checkpoint(Checkpoint(ORIGIN, version, hashlib.sha256(b"root").digest()), signer)
    parts: dict[str, Any] = {
        "orgs": [
            {"org_id": "shenzhen-ev", "kind": "oem", "name": "Shenzhen EV", "gs1_prefixes": ["6901234"],
             "keys": [_key(OEM), _key(OLD_KEY, revoked_seq=30, compromised_at="2026-10-01T00:00:00Z")]},
            {"org_id": "cell-supplier", "kind": "supplier", "name": "Cells", "gs1_prefixes": [],
             "keys": [_key(SUPPLIER)]},
            {"org_id": "riyadh-ws", "kind": "workshop", "name": "Riyadh", "country": "SA", "gs1_prefixes": [],
             "keys": []},
            {"org_id": "oslo-ws", "kind": "workshop", "name": "Oslo", "country": "NO", "gs1_prefixes": [],
             "keys": []},
            {"org_id": "mexico-indep", "kind": "workshop", "name": "Mexico", "country": "MX", "gs1_prefixes": [],
             "keys": []},
        ],
        "grants": [
            {"grant_id": "g-commission", "kind": "commission", "grantor": "shenzhen-ev", "grantee": "cell-supplier",
             "gtin_prefixes": ["6901234"], "status": "active"},
            {"grant_id": "g-riyadh", "kind": "workshop", "grantor": "shenzhen-ev", "grantee": "riyadh-ws",
             "activities": ["install", "repair"], "gtin_prefixes": ["6901234"],
             "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z", "status": "active"},
            {"grant_id": "g-oslo", "kind": "workshop", "grantor": "shenzhen-ev", "grantee": "oslo-ws",
             "activities": ["install"], "gtin_prefixes": ["6901234"], "status": "revoked"},
        ],
        "recalls": [{"campaign_id": "RC-2026-07", "gtin": GTIN, "lots": ["LOT-BAD"], "serial_ranges": [],
                     "reason": "thermal runaway risk"}],
    }
    parts.update(changes)
    inner = build_bundle(origin=ORIGIN, version=version, checkpoint=checkpoint, now=now, **parts)
    return sign_bundle(inner, signer)


@pytest.fixture
def log_signer() -> Signer:
    return Signer(ORIGIN, KeyPair.from_seed(b"\x09" * 32).signing_key)


def _uri(serial: str, *, key: KeyPair = OEM, lot: str | None = "LOT-OK", sig: bool = True, gtin: str = GTIN) -> str:
    return build_uri(BASE, gtin, serial, lot=lot, sig=sign_part_id(key, gtin, serial) if sig else None)


def test_genuine_qr_verifies_offline(log_signer: Signer) -> None:
    envelope = _bundle(log_signer)
    result = offline_verdict(_uri("K3Q9ZT7M2X8W4R6P"), envelope, log_signer.verifier_key(), now=NOW)
    assert result.verdict == "genuine"
    assert result.signed_by == "shenzhen-ev"
    assert [r.code for r in result.judgement.reasons] == ["signature_valid"]
    assert result.bundle_version == 40 and not result.bundle_expired and result.bundle_age_seconds == 0
    # a supplier holding a commission grant on the prefix is entitled too
    supplied = offline_verdict(_uri("SUP1", key=SUPPLIER), envelope, log_signer.verifier_key(), now=NOW)
    assert (supplied.verdict, supplied.signed_by) == ("genuine", "cell-supplier")


def test_forged_or_missing_signature_fails(log_signer: Signer) -> None:
    envelope = _bundle(log_signer)
    vkey = log_signer.verifier_key()
    forged = offline_verdict(_uri("K3Q9ZT7M2X8W4R6P", key=KeyPair.generate()), envelope, vkey, now=NOW)
    assert forged.verdict == "suspect"
    assert forged.judgement.reasons[0].code == "signature_invalid"
    # a genuine signature copied onto another serial's label
    good = _uri("AAAA1111")
    copied = good.replace("/21/AAAA1111", "/21/AAAA1112")
    assert offline_verdict(copied, envelope, vkey, now=NOW).verdict == "suspect"
    missing = offline_verdict(_uri("K3Q9ZT7M2X8W4R6P", sig=False), envelope, vkey, now=NOW)
    assert missing.verdict == "unknown"
    assert [r.code for r in missing.judgement.reasons] == ["signature_missing"]
    # nobody in the bundle holds this prefix
    stranger = "0" + "4006381" + "33393" + "1"
    result = offline_verdict(_uri("X1", gtin=stranger), envelope, vkey, now=NOW)
    assert result.verdict == "suspect" and result.judgement.reasons[0].code == "signature_unknown_key"


def test_compromised_key_signature_is_suspect(log_signer: Signer) -> None:
    result = offline_verdict(_uri("OLD1", key=OLD_KEY), _bundle(log_signer), log_signer.verifier_key(), now=NOW)
    assert result.verdict == "suspect"
    assert "key_compromised" in [r.code for r in result.judgement.reasons]


def test_recalled_lot_shows_recalled(log_signer: Signer) -> None:
    envelope = _bundle(log_signer)
    result = offline_verdict(_uri("R1", lot="LOT-BAD"), envelope, log_signer.verifier_key(), now=NOW)
    assert result.verdict == "recalled"
    recall = next(r for r in result.judgement.reasons if r.code == "recalled")
    assert recall.details["campaign_id"] == "RC-2026-07"
    other_lot = offline_verdict(_uri("R1", lot="LOT-OK"), envelope, log_signer.verifier_key(), now=NOW)
    assert other_lot.verdict == "genuine"
    other_gtin = offline_verdict(_uri("R1", lot="LOT-BAD", gtin=GTIN_B), envelope, log_signer.verifier_key(),
                                 now=NOW)
    assert other_gtin.verdict == "genuine"


def test_workshop_authorization_offline(log_signer: Signer) -> None:
    envelope = _bundle(log_signer)
    vkey = log_signer.verifier_key()
    riyadh = offline_verdict(_uri("W1"), envelope, vkey, now=NOW, workshop="riyadh-ws")
    assert riyadh.authorization is not None
    assert (riyadh.authorization.authorized, riyadh.authorization.grant_id) == (True, "g-riyadh")
    revoked = offline_verdict(_uri("W1"), envelope, vkey, now=NOW, workshop="oslo-ws")
    assert revoked.authorization is not None
    assert (revoked.authorization.authorized, revoked.authorization.status) == (False, "revoked")
    later = offline_verdict(_uri("W1"), _bundle(log_signer, now=datetime(2027, 2, 1, tzinfo=UTC)), vkey,
                            now=datetime(2027, 2, 1, tzinfo=UTC), workshop="riyadh-ws")
    assert later.authorization is not None and later.authorization.status == "expired"
    scope = offline_verdict(_uri("W1"), envelope, vkey, now=NOW, workshop="riyadh-ws", activity="battery_dismantling")
    assert scope.authorization is not None and scope.authorization.status == "out_of_scope"
    independent = offline_verdict(_uri("W1"), envelope, vkey, now=NOW, workshop="mexico-indep")
    assert independent.authorization is not None and independent.authorization.status == "independent"
    stranger = offline_verdict(_uri("W1"), envelope, vkey, now=NOW, workshop="not-registered")
    assert stranger.authorization is not None and stranger.authorization.status == "unknown_org"


SCOPED_WS = "bergen-ws"  # a Norwegian workshop
PRODUCTS = [{"gtin": GTIN, "brands": ["Dragon"], "categories": ["brakes"], "brand_owners": ["shenzhen-ev"]},
            {"gtin": GTIN_B, "brands": ["Dragon", "Lotus"], "categories": ["adas", "brakes"],
             "brand_owners": ["shenzhen-ev"]}]


def _scoped(log_signer: Signer, *, gtin: str = GTIN, activity: str = "install", products: Any = None,
            grantor: str = "shenzhen-ev", now: str = "2026-11-28T12:00:00Z", **scope: Any) -> tuple[str, str]:
    """(status, message) of ``bergen-ws`` doing ``activity`` on ``gtin`` under one grant with ``scope``."""
    grant = {"grant_id": "g-bergen", "kind": "workshop", "grantor": grantor, "grantee": SCOPED_WS,
             "activities": ["install"], "valid_from": "2026-01-01T00:00:00Z", "valid_until": None,
             "status": "active", **scope}
    orgs = [{"org_id": "shenzhen-ev", "kind": "oem", "name": "Shenzhen EV", "gs1_prefixes": ["6901234"],
             "country": "CN", "keys": [_key(OEM)]},
            {"org_id": "other-oem", "kind": "oem", "name": "Other", "gs1_prefixes": ["4006381"], "country": "DE",
             "keys": []},
            {"org_id": SCOPED_WS, "kind": "workshop", "name": "Bergen", "country": "NO", "gs1_prefixes": [],
             "keys": []}]
    envelope = _bundle(log_signer, orgs=orgs, grants=[grant], recalls=[],
                       products=PRODUCTS if products is None else products)
    result = offline_verdict(_uri("SCOPE1", gtin=gtin), envelope, log_signer.verifier_key(),
                             now=datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
                             workshop=SCOPED_WS, activity=activity)
    assert result.authorization is not None
    return result.authorization.status, result.authorization.message


@pytest.mark.parametrize(("case", "kwargs", "status", "missing"), [
    ("activity", {"activities": ["install", "repair"]}, "authorized", None),
    ("activity", {"activity": "warranty_claim"}, "out_of_scope", "activity"),
    ("gtin prefix", {"gtin_prefixes": ["6901234"]}, "authorized", None),
    ("gtin prefix", {"gtin_prefixes": ["69012349"]}, "out_of_scope", "gtin_prefix"),
    ("brand", {"brands": ["Dragon"]}, "authorized", None),
    ("brand", {"brands": ["Lotus"]}, "out_of_scope", "brand"),
    ("brand", {"brands": ["Dragon"], "gtin": GTIN_B}, "out_of_scope", "brand"),  # a GTIN also sold as Lotus
    ("brand", {"brands": ["Dragon", "Lotus"], "gtin": GTIN_B}, "authorized", None),
    ("brand", {"brands": ["Dragon"], "products": []}, "out_of_scope", "brand"),  # GTIN not in the bundle
    ("category", {"categories": ["brakes"]}, "authorized", None),
    ("category", {"categories": ["hv_battery"]}, "out_of_scope", "category"),
    ("category", {"categories": ["brakes"], "gtin": GTIN_B}, "out_of_scope", "category"),
    ("category", {"categories": ["brakes"], "products": []}, "out_of_scope", "category"),
    ("country", {"countries": ["NO", "SE"]}, "authorized", None),
    ("country", {"countries": ["SA"]}, "out_of_scope", "country"),
    ("site", {"sites": ["7080000000018"]}, "out_of_scope", "site"),  # a scan names no site, as on the server
    ("technician", {"technicians": ["T-1"]}, "out_of_scope", "technician"),
    ("validity", {"valid_until": "2026-11-28T12:00:00Z"}, "expired", None),  # until is exclusive
    ("validity", {"valid_from": "2026-11-28T12:00:01Z"}, "expired", None),
    ("validity", {"valid_until": "2026-11-28T12:00:01Z"}, "authorized", None),
    ("status", {"status": "suspended"}, "suspended", None),
    ("status", {"status": "revoked"}, "revoked", None),
    ("grantor", {"grantor": "other-oem"}, "independent", None),  # only the brand owner's grants count
    ("grantor", {"grantor": "other-oem", "products": [{**PRODUCTS[0], "brand_owners": ["other-oem"]}]},
     "authorized", None),  # the brand owner recorded at commissioning wins over the prefix holder
])
def test_offline_authorization_judges_every_scope_dimension(log_signer: Signer, case: str, kwargs: dict[str, Any],
                                                            status: str, missing: str | None) -> None:
    got, message = _scoped(log_signer, **kwargs)
    assert got == status, (case, message)
    if missing is not None:
        assert message.endswith(f"does not cover: {missing})"), message


def test_refusals_rank_as_on_the_server(log_signer: Signer) -> None:
    """A revoked in-scope grant outranks a suspended one, which outranks an expired one and any out-of-scope one."""
    orgs = [{"org_id": "shenzhen-ev", "kind": "oem", "name": "S", "gs1_prefixes": ["6901234"], "country": "CN",
             "keys": [_key(OEM)]},
            {"org_id": SCOPED_WS, "kind": "workshop", "name": "B", "country": "NO", "gs1_prefixes": [], "keys": []}]

    def grant(grant_id: str, **extra: Any) -> dict[str, Any]:
        return {"grant_id": grant_id, "kind": "workshop", "grantor": "shenzhen-ev", "grantee": SCOPED_WS,
                "activities": ["install"], "valid_from": "2026-01-01T00:00:00Z", "status": "active", **extra}

    def status(*grants: dict[str, Any]) -> str:
        envelope = _bundle(log_signer, orgs=orgs, grants=list(grants), recalls=[], products=PRODUCTS)
        result = offline_verdict(_uri("RANK1"), envelope, log_signer.verifier_key(), now=NOW, workshop=SCOPED_WS)
        assert result.authorization is not None
        return result.authorization.status

    out = grant("g-out", categories=["adas"])
    expired = grant("g-exp", valid_until="2026-02-01T00:00:00Z")
    suspended = grant("g-sus", status="suspended")
    revoked = grant("g-rev", status="revoked")
    assert status(out) == "out_of_scope"
    assert status(out, expired) == "expired"
    assert status(out, expired, suspended) == "suspended"
    assert status(out, expired, suspended, revoked) == "revoked"
    assert status(out, expired, suspended, revoked, grant("g-ok")) == "authorized"


def test_expired_bundle_says_so(log_signer: Signer) -> None:
    envelope = _bundle(log_signer)
    later = NOW + timedelta(days=8)
    result = offline_verdict(_uri("E1"), envelope, log_signer.verifier_key(), now=later)
    assert result.bundle_expired
    assert result.verdict == "unknown"
    assert result.judgement.reasons[0].code == "bundle_expired"
    assert result.bundle_age_seconds == 8 * 86400
    assert result.to_json()["bundle"] == {"version": 40, "age_seconds": 8 * 86400, "expired": True}


def test_tampered_or_foreign_bundle_is_refused(log_signer: Signer) -> None:
    envelope = _bundle(log_signer)
    vkey = log_signer.verifier_key()
    tampered = copy.deepcopy(envelope)
    tampered["bundle"]["recalls"] = []  # hide the recall
    with pytest.raises(SignatureError):
        verify_bundle(tampered, vkey, now=NOW)
    later = copy.deepcopy(envelope)
    later["bundle"]["expires_at"] = "2030-01-01T00:00:00Z"
    with pytest.raises(SignatureError):
        verify_bundle(later, vkey, now=NOW)
    impostor = Signer(ORIGIN, KeyPair.generate().signing_key)
    with pytest.raises(SignatureError):
        verify_bundle(_bundle(impostor), vkey, now=NOW)
    with pytest.raises(ProofError) as info:
        verify_bundle(envelope, vkey, now=NOW, min_version=41)
    assert info.value.code == "log_shrunk"
    with pytest.raises(InvalidInput):
        verify_bundle({"nope": 1}, vkey, now=NOW)


def test_verdict_precedence_and_reasons() -> None:
    base = PartFacts(gtin=GTIN, serial="S", state="received", commissioned_by="shenzhen-ev", lot="L1")
    assert judge(base, sig="valid").verdict == "genuine"
    assert judge(base, sig="missing").verdict == "genuine"  # online: the ledger is the authority
    assert judge(base, sig="missing", online=False).verdict == "unknown"
    assert judge(None, sig="not_checked").verdict == "unknown"
    assert judge(base, sig="valid", label_lot="L2").verdict == "suspect"
    recalled = PartFacts(**{**base.__dict__, "recalls": (RecallFact("RC1"),)})
    assert judge(recalled, sig="valid").verdict == "recalled"
    scrapped = PartFacts(**{**recalled.__dict__, "state": "scrapped"})
    assert judge(scrapped, sig="valid").verdict == "retired"
    clone = PartFacts(**{**scrapped.__dict__, "open_flags": (FlagFact("clone_suspected", "installed twice", 9),)})
    judgement = judge(clone, sig="valid")
    assert judgement.verdict == "suspect"
    assert {r.code for r in judgement.reasons} == {"flag", "retired", "recalled", "signature_valid"}
    assert judgement.reasons[-1].severity == "info"
    note = PartFacts(**{**base.__dict__, "open_flags": (FlagFact("out_of_scope", "install outside grant", 9),)})
    assert judge(note, sig="valid").verdict == "genuine"
    assert judge(base, sig="invalid").verdict == "suspect"


def test_authorize_prefers_an_active_grant_over_a_revoked_one() -> None:
    grants = [GrantFacts("g1", "oem", "ws", ("install",), ("6901234",), status="revoked"),
              GrantFacts("g2", "oem", "ws", ("install",), ("6901234",), valid_from="2026-01-01T00:00:00Z")]
    ok = authorize(grants, workshop="ws", gtin=GTIN, activity="install", now="2026-06-01T00:00:00Z")
    assert (ok.authorized, ok.grant_id) == (True, "g2")
    early = authorize(grants, workshop="ws", gtin=GTIN, activity="install", now="2025-06-01T00:00:00Z")
    assert (early.authorized, early.status) == (False, "revoked")
