"""The stories of issue 3, end to end through Ledger.append and the query module."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger import queries
from ledger.errors import LedgerError
from ledger.replay import compare_replay
from ledger.storage.db import Database
from tests.ledger.domain_support import (
    GLN_OSLO,
    GTIN_BATTERY,
    GTIN_BRAKE,
    GTIN_FOREIGN,
    GTIN_SECOND_LIFE,
    OEM_PREFIX,
    VALID_FROM,
    DomainWorld,
    build,
    vehicle,
)
from tests.support import World


@pytest.fixture
def d(world: World) -> DomainWorld:
    return build(world)


def _db(d: DomainWorld) -> Database:
    return d.world.ledger.db


def test_genuine_part_is_verified_and_installed(d: DomainWorld) -> None:
    part = d.commission()
    d.deliver(part, d.workshop)
    auth = queries.workshop_authorization(_db(d), d.workshop.org, part[0], "install", serial=part[1])
    assert auth["authorized"] and auth["grant_id"] == "g-workshop"
    receipt = d.install(part, "car-1", site=GLN_OSLO)
    assert receipt.flags == []
    got = queries.get_part(_db(d), *part)
    assert got["state"] == "installed" and got["vehicle"] == vehicle("car-1")
    assert got["installed_by"] == d.workshop.org and got["brand_owner"] == d.oem.org
    assert got["lot"] == "L1" and got["commissioned_by"] == d.oem.org
    assert got["flags"] == [] and got["open_recalls"] == [] and not got["suspect"]
    history = queries.part_history(_db(d), *part)
    assert [h["type"] for h in history] == ["part.commission", "part.ship", "part.receive", "part.install"]
    assert history[-1]["authorization"] == "authorized"
    assert [h["seq"] for h in history] == sorted(h["seq"] for h in history)


def test_second_vehicle_install_is_recorded_and_flags_the_part_suspect(d: DomainWorld) -> None:
    part = d.commission()
    d.install(part, "car-1")
    size = d.world.ledger.size()
    receipt = d.install(part, "car-2")
    assert d.world.ledger.size() == size + 1  # recorded, not rejected
    assert [f.kind for f in receipt.flags] == ["clone_suspected"]
    got = queries.get_part(_db(d), *part)
    assert got["suspect"] and got["vehicle"] == vehicle("car-2")
    assert [f["kind"] for f in got["open_flags"]] == ["clone_suspected"]
    alerts = queries.alerts_for_org(_db(d), d.oem.org)
    assert [(a["kind"], a["subject"]) for a in alerts] == [("clone_suspected", f"part:{part[0]}:{part[1]}")]
    assert queries.alerts_for_org(_db(d), d.oem2.org) == []
    # the same vehicle twice is not a clone, it is a mistake: rejected
    d.reject(d.workshop, "part.install", {"gtin": part[0], "serial": part[1], "vehicle": vehicle("car-2")},
             "invalid_state")


def test_recalled_lot_is_refused_for_warranty_and_shown_recalled(d: DomainWorld) -> None:
    bad = d.commission(lot="L-BAD")
    good = d.commission(lot="L-GOOD")
    d.install(bad, "car-1")
    d.install(good, "car-2")
    d.append(d.oem, "recall.set", {"campaign_id": "RC-1", "gtin": GTIN_BRAKE, "lots": ["L-BAD"],
                                   "reason_code": "pad_delamination"})
    got = queries.get_part(_db(d), *bad)
    assert got["recalled"] and [r["campaign_id"] for r in got["open_recalls"]] == ["RC-1"]
    assert not queries.get_part(_db(d), *good)["recalled"]
    d.reject(d.workshop, "warranty.claim", {"claim_id": "C-1", "gtin": bad[0], "serial": bad[1],
                                            "failure_code": "BRK01"}, "part_recalled")
    affected = queries.recall_affected(_db(d), "RC-1")
    assert [(p["gtin"], p["serial"]) for p in affected["parts"]] == [bad]
    assert affected["vehicles"] == [vehicle("car-1")]
    # fitting another part of the recalled lot is recorded and flagged
    spare = d.commission(lot="L-BAD")
    receipt = d.install(spare, "car-3")
    assert [f.kind for f in receipt.flags] == ["recalled_installed"]
    # only the brand owner recalls
    d.reject(d.workshop, "recall.set", {"campaign_id": "RC-2", "gtin": GTIN_BRAKE}, "role_forbidden")
    d.reject(d.oem2, "recall.set", {"campaign_id": "RC-2", "gtin": GTIN_BRAKE}, "not_authorized")
    d.append(d.oem, "recall.clear", {"campaign_id": "RC-1"})
    assert not queries.get_part(_db(d), *bad)["recalled"]


def test_revoked_workshops_later_installation_is_flagged_earlier_stays_valid(d: DomainWorld) -> None:
    first, second = d.commission(), d.commission()
    before = d.install(first, "car-1")
    assert before.flags == []
    revoke = d.append(d.oem, "grant.revoke", {"grant_id": "g-workshop", "reason": "audit_failed"})
    after = d.install(second, "car-2")
    assert [f.kind for f in after.flags] == ["grant_revoked"]
    history_first = queries.part_history(_db(d), *first)
    assert history_first[-1]["authorization"] == "authorized"
    assert queries.part_history(_db(d), *second)[-1]["authorization"] == "revoked"
    # judged as of the log position, never the client's clock
    then = queries.workshop_authorization(_db(d), d.workshop.org, GTIN_BRAKE, "install", at_seq=before.seq)
    now = queries.workshop_authorization(_db(d), d.workshop.org, GTIN_BRAKE, "install")
    assert then["status"] == "authorized" and now["status"] == "revoked"
    at_revoke = queries.workshop_authorization(_db(d), d.workshop.org, GTIN_BRAKE, "install", at_seq=revoke.seq)
    assert at_revoke["status"] == "authorized"  # the revocation applies from the next record on
    d.reject(d.oem, "grant.resume", {"grant_id": "g-workshop"}, "invalid_state")


def test_suspension_and_resumption_and_scope(d: DomainWorld) -> None:
    part = d.commission()
    d.append(d.oem, "grant.suspend", {"grant_id": "g-workshop"})
    assert [f.kind for f in d.install(part, "car-1").flags] == ["grant_suspended"]
    d.append(d.oem, "grant.resume", {"grant_id": "g-workshop"})
    d.append(d.oem, "grant.issue", {"grant_id": "g-narrow", "kind": "workshop", "grantee": d.independent.org,
                                    "activities": ["install"], "countries": ["SG"], "valid_from": VALID_FROM})
    other = d.commission()
    receipt = d.install(other, "car-2", by=d.independent)
    assert [f.kind for f in receipt.flags] == ["grant_out_of_scope"]
    auth = queries.workshop_authorization(_db(d), d.independent.org, GTIN_BRAKE, "install")
    assert auth["status"] == "out_of_scope" and auth["missing"] == ["country"]
    d.reject(d.workshop, "grant.suspend", {"grant_id": "g-workshop"}, "role_forbidden")
    d.reject(d.oem2, "grant.suspend", {"grant_id": "g-workshop"}, "not_authorized")


def test_expired_grant_and_future_grant(d: DomainWorld) -> None:
    d.append(d.oem, "grant.issue", {"grant_id": "g-old", "kind": "workshop", "grantee": d.independent.org,
                                    "activities": ["install"], "valid_from": "2020-01-01T00:00:00Z",
                                    "valid_until": "2021-01-01T00:00:00Z"})
    part = d.commission()
    assert [f.kind for f in d.install(part, "car-1", by=d.independent).flags] == ["grant_expired"]


def test_independent_workshop_is_recorded_as_independent(d: DomainWorld) -> None:
    part = d.commission()
    receipt = d.install(part, "car-1", by=d.independent)
    assert [f.kind for f in receipt.flags] == ["independent_service"]
    d.append(d.independent, "part.repair", {"gtin": part[0], "serial": part[1], "result": "pass",
                                            "code": "PAD_SWAP"})
    history = queries.part_history(_db(d), *part)
    assert [h["authorization"] for h in history[-2:]] == ["independent", "independent"]
    assert queries.get_part(_db(d), *part)["installed_by"] == d.independent.org
    auth = queries.workshop_authorization(_db(d), d.independent.org, GTIN_BRAKE, "install")
    assert auth["status"] == "independent" and not auth["authorized"]


def test_supplier_commissions_only_under_granted_prefixes(d: DomainWorld) -> None:
    granted = f"{OEM_PREFIX}2"  # the supplier holds a grant for 69012342…
    from ledger.gs1 import make_gtin

    inside = make_gtin(granted, 1)
    outside = make_gtin(OEM_PREFIX, 300)  # 69012340… : not granted
    d.commission(inside, "SUP-1", by=d.supplier, category="hv_battery")
    got = queries.get_part(_db(d), inside, "SUP-1")
    assert got["brand_owner"] == d.oem.org and got["commissioned_by"] == d.supplier.org
    err = d.reject(d.supplier, "part.commission", {"gtin": outside, "serial": "SUP-2", "category": "brakes"},
                   "prefix_not_granted")
    assert "commission grant" in err.message
    d.reject(d.supplier, "part.commission", {"gtin": GTIN_FOREIGN, "serial": "SUP-3", "category": "brakes"},
             "prefix_not_granted")
    d.reject(d.oem2, "part.commission", {"gtin": GTIN_BRAKE, "serial": "X", "category": "brakes"},
             "prefix_not_granted")
    d.reject(d.workshop, "part.commission", {"gtin": GTIN_BRAKE, "serial": "X", "category": "brakes"},
             "role_forbidden")
    d.reject(d.oem, "part.commission", {"gtin": inside, "serial": "SUP-1", "category": "brakes"},
             "duplicate_serial")
    d.append(d.oem, "grant.revoke", {"grant_id": "g-supplier"})
    d.reject(d.supplier, "part.commission", {"gtin": inside, "serial": "SUP-4", "category": "brakes"},
             "prefix_not_granted")


def test_commission_label_signature_must_be_the_commissioning_orgs(d: DomainWorld) -> None:
    from ledger.digital_link import sign_part_id
    from ledger.gs1 import make_gtin
    from ledger.keys import KeyPair

    part = d.commission(serial="SIG-OK", part_sig=sign_part_id(d.oem.key, GTIN_BRAKE, "SIG-OK"))
    record = d.world.ledger.record(queries.get_part(_db(d), *part)["commissioned_seq"])
    assert record.entry.body["part_sig"] == sign_part_id(d.oem.key, GTIN_BRAKE, "SIG-OK")
    # a supplier commissioning under its grant signs its own labels
    inside = make_gtin(f"{OEM_PREFIX}2", 7)
    d.commission(inside, "SIG-SUP", by=d.supplier, category="hv_battery",
                 part_sig=sign_part_id(d.supplier.key, inside, "SIG-SUP"))
    base = {"gtin": GTIN_BRAKE, "category": "brakes"}
    forged = {**base, "serial": "SIG-1", "part_sig": sign_part_id(KeyPair.generate(), GTIN_BRAKE, "SIG-1")}
    err = d.reject(d.oem, "part.commission", forged, "bad_part_sig")
    assert "01" + GTIN_BRAKE + "21SIG-1" in err.message and err.field == "part_sig"
    other_serial = {**base, "serial": "SIG-2", "part_sig": sign_part_id(d.oem.key, GTIN_BRAKE, "SIG-OTHER")}
    d.reject(d.oem, "part.commission", other_serial, "bad_part_sig")
    by_brand_owner = {"gtin": inside, "serial": "SIG-3", "category": "hv_battery",
                      "part_sig": sign_part_id(d.oem.key, inside, "SIG-3")}
    d.reject(d.supplier, "part.commission", by_brand_owner, "bad_part_sig")
    d.reject(d.oem, "part.commission", {**base, "serial": "SIG-4", "part_sig": "not-a-signature"}, "invalid_body")
    d.reject(d.oem, "part.commission", {**base, "serial": "SIG-5", "part_sig": 12}, "invalid_body")
    with pytest.raises(LedgerError) as missing:
        queries.get_part(_db(d), GTIN_BRAKE, "SIG-1")
    assert missing.value.code == "unknown_part"


def test_claim_passing_every_finding_is_approved_and_paid_and_a_never_installed_one_is_held(d: DomainWorld) -> None:
    part = d.commission()
    d.install(part, "car-1")
    d.append(d.workshop, "warranty.claim", {"claim_id": "C-OK", "gtin": part[0], "serial": part[1],
                                            "failure_code": "BRK01", "vehicle": vehicle("car-1"),
                                            "documents": ["ab" * 32], "amount": {"currency": "NOK", "minor": 129900}})
    claim = queries.get_claim(_db(d), "C-OK")
    assert claim["status"] == "open" and claim["held_reasons"] == []
    f = claim["findings"]
    assert f["installed_by_claimant"] and f["grant_in_scope"] and f["within_term"]
    assert not f["suspect"] and not f["duplicate"] and not f["recalled"] and not f["removed"]
    d.reject(d.workshop, "warranty.claim", {"claim_id": "C-DUP", "gtin": part[0], "serial": part[1],
                                            "failure_code": "BRK01"}, "duplicate_claim")
    d.reject(d.workshop, "warranty.decide", {"claim_id": "C-OK", "decision": "approve"}, "role_forbidden")
    d.reject(d.oem2, "warranty.decide", {"claim_id": "C-OK", "decision": "approve"}, "not_authorized")
    d.reject(d.oem, "warranty.pay", {"claim_id": "C-OK", "amount": {"currency": "NOK", "minor": 129900}},
             "invalid_state")
    d.append(d.oem, "warranty.decide", {"claim_id": "C-OK", "decision": "approve"})
    d.append(d.oem, "warranty.pay", {"claim_id": "C-OK", "amount": {"currency": "NOK", "minor": 129900},
                                     "reference": "PAY-1"})
    assert queries.get_claim(_db(d), "C-OK")["status"] == "paid"

    never = d.commission()
    d.append(d.workshop, "warranty.claim", {"claim_id": "C-HELD", "gtin": never[0], "serial": never[1],
                                            "failure_code": "BRK02"})
    held = queries.get_claim(_db(d), "C-HELD")
    assert held["status"] == "held"
    assert held["held_reasons"] == ["not_installed_by_claimant", "grant_not_in_scope", "outside_warranty_term"]
    d.reject(d.oem, "warranty.decide", {"claim_id": "C-HELD", "decision": "reject"}, "invalid_body")
    d.append(d.oem, "warranty.decide", {"claim_id": "C-HELD", "decision": "reject",
                                        "reason_codes": ["not_installed_by_claimant"]})
    assert queries.get_claim(_db(d), "C-HELD")["status"] == "rejected"
    assert [c["claim_id"] for c in queries.list_claims(_db(d), oem=d.oem.org)] == ["C-OK", "C-HELD"]


def test_trace_claim_and_lot(d: DomainWorld) -> None:
    parts = [d.commission(lot="L7") for _ in range(3)]
    for i, part in enumerate(parts):
        d.install(part, f"car-{i}")
    d.append(d.workshop, "warranty.claim", {"claim_id": "C-T", "gtin": parts[0][0], "serial": parts[0][1],
                                            "failure_code": "BRK01"})
    trace = queries.trace_claim(_db(d), "C-T")
    assert trace["part"]["serial"] == parts[0][1] and trace["lot"] == {"gtin": GTIN_BRAKE, "lot": "L7"}
    assert trace["supplier"]["org_id"] == d.oem.org
    assert sorted(s["serial"] for s in trace["siblings"]) == sorted(p[1] for p in parts[1:])
    assert trace["sibling_vehicles"] == sorted(vehicle(f"car-{i}") for i in (1, 2))
    lot = queries.trace_lot(_db(d), GTIN_BRAKE, "L7")
    assert lot["vehicles"] == sorted(vehicle(f"car-{i}") for i in range(3))
    assert lot["workshops"] == [d.workshop.org] and [c["claim_id"] for c in lot["claims"]] == ["C-T"]
    assert len(lot["installations"]) == 3


def test_battery_life_and_second_life(d: DomainWorld) -> None:
    battery = {"chemistry": "LFP", "capacity_wh": 60000, "mass_g": 410000, "carbon_footprint_g": 5200000}
    pack = d.commission(GTIN_BATTERY, "PACK-1", category="hv_battery", battery=battery)
    d.install(pack, "car-1")
    for soh in (97, 91):
        d.append(d.workshop, "battery.soh", {"gtin": pack[0], "serial": pack[1], "soh_pct": soh, "cycles": 400})
    d.append(d.workshop, "part.remove", {"gtin": pack[0], "serial": pack[1], "reason_code": "capacity_loss"})
    d.append(d.recycler, "part.collect", {"gtin": pack[0], "serial": pack[1], "from": d.workshop.org})
    d.append(d.recycler, "part.recycle", {"gtin": pack[0], "serial": pack[1],
                                          "recovered": {"lithium": 5200, "cobalt": 0, "nickel": 0, "copper": 31000}})
    state = queries.get_part(_db(d), *pack)
    assert state["state"] == "recycled" and state["soh_pct"] == 91
    public = queries.battery_passport(_db(d), *pack, "public")
    assert public["battery"]["chemistry"] == "LFP" and public["status"] == "end_of_life"
    assert "soh_history" not in public and "installations" not in public
    legit = queries.battery_passport(_db(d), *pack, "legitimate_interest")
    assert [r["soh_pct"] for r in legit["soh_history"]] == [97, 91] and "installations" not in legit
    auth = queries.battery_passport(_db(d), *pack, "authority")
    assert auth["recovered_g"]["lithium"] == 5200 and auth["installations"][0]["vehicle"] == vehicle("car-1")
    d.reject(d.recycler, "part.recycle", {"gtin": pack[0], "serial": pack[1], "recovered": {}}, "invalid_state")
    assert [f.kind for f in d.install(pack, "car-9").flags] == ["recycled_reinstalled"]

    old = d.commission(GTIN_BATTERY, "PACK-2", category="hv_battery", battery=battery)
    d.install(old, "car-2")
    d.append(d.workshop, "part.remove", {"gtin": old[0], "serial": old[1]})
    d.append(d.recycler, "part.collect", {"gtin": old[0], "serial": old[1]})
    d.reject(d.recycler, "part.repurpose", {"gtin": old[0], "serial": old[1], "new_gtin": GTIN_BRAKE,
                                            "new_serial": "SL-1"}, "prefix_not_granted")
    repurpose = {"gtin": old[0], "serial": old[1], "new_gtin": GTIN_SECOND_LIFE, "new_serial": "SL-1",
                 "category": "hv_battery"}
    from ledger.digital_link import sign_part_id
    # the new identity's label signature must be the repurposing org's, over the new element string
    d.reject(d.recycler, "part.repurpose", {**repurpose, "part_sig": sign_part_id(d.recycler.key, *old)},
             "bad_part_sig")
    d.append(d.recycler, "part.repurpose",
             {**repurpose, "part_sig": sign_part_id(d.recycler.key, GTIN_SECOND_LIFE, "SL-1")})
    new = queries.get_part(_db(d), GTIN_SECOND_LIFE, "SL-1")
    assert new["predecessor"] == f"{old[0]}/{old[1]}" and new["state"] == "commissioned"
    assert queries.get_part(_db(d), *old)["successor"] == f"{GTIN_SECOND_LIFE}/SL-1"
    assert queries.lineage(_db(d), GTIN_SECOND_LIFE, "SL-1") == [f"{old[0]}/{old[1]}", f"{GTIN_SECOND_LIFE}/SL-1"]
    passport = queries.battery_passport(_db(d), GTIN_SECOND_LIFE, "SL-1")
    assert passport["second_life"] and passport["battery"]["chemistry"] == "LFP"
    d.reject(d.workshop, "battery.soh", {"gtin": GTIN_BRAKE, "serial": d.commission()[1], "soh_pct": 90},
             "invalid_state")
    compare_replay(_db(d))


def test_compromised_key_flags_later_entries_and_correction_closes_flags(d: DomainWorld) -> None:
    part = d.commission()
    d.install(part, "car-1")
    from ledger.keys import key_id

    kid = key_id(d.workshop.key.public_key)
    receipt = d.append(d.operator, "key.revoke", {"kid": kid, "compromised_at": "2000-01-01T00:00:00Z"})
    assert {f.kind for f in receipt.flags} == {"key_compromised"}
    got = queries.get_part(_db(d), *part)
    assert got["suspect"] and {f["kind"] for f in got["open_flags"]} == {"key_compromised"}
    # the revoked key can write nothing more
    d.reject(d.workshop, "part.inspect", {"gtin": part[0], "serial": part[1], "result": "pass"}, "revoked_key")
    # the operator corrects the revocation's flags after investigation
    d.append(d.operator, "entry.correct", {"corrects": receipt.entry_id, "reason_code": "false_alarm"})
    got = queries.get_part(_db(d), *part)
    assert not got["suspect"] and got["open_flags"] == [] and len(got["flags"]) == 1
    d.reject(d.oem2, "entry.correct", {"corrects": receipt.entry_id, "reason_code": "x"}, "not_authorized")
    d.reject(d.oem, "entry.correct", {"corrects": "0" * 64, "reason_code": "x"}, "unknown_entry")
    compare_replay(_db(d))


def test_bad_input_is_rejected_with_its_code_and_nothing_appended(d: DomainWorld) -> None:
    d.reject(d.workshop, "part.install", {"gtin": GTIN_BRAKE, "serial": "NOPE", "vehicle": vehicle("c")},
             "unknown_part")
    d.reject(d.oem, "grant.issue", {"grant_id": "g-x", "kind": "workshop", "grantee": "no-such-org",
                                    "activities": ["install"], "valid_from": VALID_FROM}, "unknown_org")
    wrong = GTIN_BRAKE[:13] + str((int(GTIN_BRAKE[13]) + 1) % 10)
    d.reject(d.oem, "part.commission", {"gtin": wrong, "serial": "A1", "category": "brakes"}, "invalid_gtin")
    d.reject(d.oem, "part.commission", {"gtin": GTIN_BRAKE, "serial": "A#1", "category": "brakes"},
             "invalid_serial")
    d.reject(d.oem, "grant.issue", {"grant_id": "g-y", "kind": "workshop", "grantee": d.workshop.org,
                                    "activities": ["install"], "valid_from": "2026-06-01T00:00:00Z",
                                    "valid_until": "2026-01-01T00:00:00Z"}, "invalid_period")
    d.reject(d.workshop, "part.install", {"gtin": GTIN_BRAKE, "serial": "S1", "vehicle": "WVWZZZ1JZXW000001"},
             "invalid_body")  # a VIN is never accepted where a pseudonym belongs
    d.reject(d.oem, "part.commission", {"gtin": GTIN_BRAKE, "serial": "A1", "category": "brakes",
                                        "weight_g": 15}, "invalid_body")  # unknown field



def test_custody_and_scrapped_parts(d: DomainWorld) -> None:
    part = d.commission()
    d.reject(d.workshop, "part.ship", {"gtin": part[0], "serial": part[1], "to": d.recycler.org}, "not_custodian")
    receipt = d.append(d.workshop, "part.receive", {"gtin": part[0], "serial": part[1]})
    assert [f.kind for f in receipt.flags] == ["custody_gap"]
    assert queries.get_part(_db(d), *part)["custodian"] == d.workshop.org
    d.reject(d.workshop, "part.remove", {"gtin": part[0], "serial": part[1]}, "invalid_state")
    d.append(d.workshop, "part.scrap", {"gtin": part[0], "serial": part[1], "reason_code": "damaged"})
    assert queries.get_part(_db(d), *part)["state"] == "scrapped"
    seen = d.append(d.lab, "part.inspect", {"gtin": part[0], "serial": part[1], "result": "fail"})
    assert [f.kind for f in seen.flags] == ["retired_part_seen"]
    receipt = d.install(part, "car-1")
    assert [f.kind for f in receipt.flags] == ["scrapped_reinstalled"]
    assert queries.get_part(_db(d), *part)["suspect"]


def test_queries_filter_page_and_refuse_unknowns(d: DomainWorld) -> None:
    from ledger.errors import InvalidInput, NotFound

    a, b, c = d.commission(lot="LA"), d.commission(lot="LA"), d.commission(lot="LB")
    d.install(a, "car-1")
    d.deliver(c, d.workshop)
    db = _db(d)
    assert [p["serial"] for p in queries.list_parts(db, gtin=GTIN_BRAKE, lot="LA")] == [a[1], b[1]]
    assert [p["serial"] for p in queries.list_parts(db, state="installed")] == [a[1]]
    assert [p["serial"] for p in queries.list_parts(db, org=d.workshop.org)] == [a[1], c[1]]
    assert [p["serial"] for p in queries.list_parts(db, gtin=GTIN_BRAKE, offset=1, limit=1)] == [b[1]]
    grants = queries.list_grants(db, grantor=d.oem.org)
    assert [g["grant_id"] for g in grants] == ["g-workshop", "g-supplier"]
    assert grants[0]["changes"][0]["status"] == "active"
    assert queries.get_grant(db, "g-supplier")["gtin_prefixes"] == [f"{OEM_PREFIX}2"]
    with pytest.raises(NotFound) as info:
        queries.get_part(db, GTIN_BRAKE, "NOPE")
    assert info.value.code == "unknown_part"
    lookups: list[Callable[[], object]] = [
        lambda: queries.get_claim(db, "nope"), lambda: queries.recall_affected(db, "nope"),
        lambda: queries.get_grant(db, "nope"), lambda: queries.trace_claim(db, "nope")]
    for call in lookups:
        with pytest.raises(NotFound):
            call()
    with pytest.raises(InvalidInput):
        queries.list_parts(db, limit=0)
    with pytest.raises(NotFound):
        queries.battery_passport(db, *a)  # brakes have no battery passport
    with pytest.raises(InvalidInput):
        queries.battery_passport(db, *a, "everyone")  # type: ignore[arg-type]
    d.reject(d.oem, "grant.issue", {"grant_id": "g-bad", "kind": "workshop", "grantee": d.workshop.org,
                                    "activities": ["install"], "gtin_prefixes": ["69X"], "valid_from": VALID_FROM},
             "invalid_body")


def test_grant_validity_is_judged_by_the_logs_clock_not_the_clients(d: DomainWorld) -> None:
    from datetime import UTC, datetime, timedelta

    from ledger.entries import format_time

    now = datetime.now(UTC)
    d.append(d.oem, "grant.issue", {"grant_id": "g-soon", "kind": "workshop", "grantee": d.independent.org,
                                    "activities": ["install"], "valid_from": format_time(now + timedelta(minutes=5))})
    part = d.commission()
    # The workshop claims a time inside the grant's window (and inside the allowed clock skew) …
    receipt = d.world.append(d.independent, "part.install",
                             {"gtin": part[0], "serial": part[1], "vehicle": vehicle("car-1")},
                             time=format_time(now + timedelta(minutes=9)))
    # … but the log's own time at that record is before valid_from: not yet valid.
    assert [f.kind for f in receipt.flags] == ["grant_expired"]
