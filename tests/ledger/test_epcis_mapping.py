"""Entries ⇄ EPCIS events: valid against GS1's schema, exactly invertible, strict on capture."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ledger.entries import SignedEntry, parse_signed_entry, validate_entry
from ledger.epcis import vocab
from ledger.epcis.export import EventIndex, document
from ledger.epcis.mapping import RULES, SIGNED_ENTRY, MapContext, entry_to_event, event_to_native
from ledger.epcis.validate import load_validator
from ledger.errors import InvalidInput
from ledger.keys import b64decode
from tests.ledger.epcis_files import SCHEMA
from tests.ledger.epcis_samples import BODIES, KEYS, ORIGIN, directory, sample_entries

CTX = MapContext(directory())


def _events() -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    out = []
    for entry, sig in sample_entries():
        event = entry_to_event(entry, sig, ctx=CTX, logged="2026-11-29T00:00:00Z")
        assert event is not None
        out.append((entry, sig, event))
    return out


def test_every_mapped_type_is_sampled_and_valid() -> None:
    events = _events()
    assert {entry["type"] for entry, _, _ in events} == set(RULES) - {"entry.correct"}
    problems = load_validator(SCHEMA).problems(document([e for _, _, e in events]))
    assert problems == []


@pytest.mark.parametrize("index", range(len(BODIES)))
def test_event_maps_back_to_the_signed_entry(index: int) -> None:
    entry, sig, event = _events()[index]
    assert event[SIGNED_ENTRY]["pl:sig"] == sig
    native = event_to_native(event, ctx=CTX)
    rebuilt = validate_entry({"v": 1, "origin": ORIGIN, "type": native.type, "org": native.org, "kid": native.kid,
                              "time": native.time, "nonce": native.nonce, "body": native.body})
    assert rebuilt.data == entry
    signed = SignedEntry(rebuilt, b64decode(native.sig, size=64))
    signed.verify(KEYS[entry["org"]].public_key)  # the actor's signature still holds


def test_standard_fields_carry_the_meaning() -> None:
    by_type = {entry["type"]: event for entry, _, event in _events()}
    install = by_type["part.install"]
    assert (install["type"], install["action"], install["bizStep"]) == ("AssociationEvent", "ADD", "installing")
    assert install["parentID"] == vocab.vehicle_uri("vp-7f3a9c")
    assert install["childEPCs"] == ["https://id.gs1.org/01/04012345000016/21/A1B2C3D4E5F6G7H8"]
    assert install["bizLocation"] == {"id": "https://id.gs1.org/414/4012345000023"}
    assert by_type["part.remove"]["action"] == "DELETE"
    commission = by_type["part.commission"]
    assert (commission["action"], commission["bizStep"], commission["disposition"]) == ("ADD", "commissioning",
                                                                                       "active")
    ship = by_type["part.ship"]
    assert ship["destinationList"] == [{"type": "owning_party",
                                        "destination": "https://id.gs1.org/414/4012345000023"}]
    assert by_type["part.inspect"]["disposition"] == "non_conformant"
    assert by_type["part.repair"]["disposition"] == "conformant"
    assert by_type["recall.set"]["persistentDisposition"] == {"set": ["recalled"]}
    assert by_type["recall.clear"]["persistentDisposition"] == {"unset": ["recalled"]}
    assert by_type["recall.set"]["quantityList"] == [
        {"epcClass": "https://id.gs1.org/01/04012345000016/10/L2026-11"},
        {"epcClass": "https://id.gs1.org/01/04012345000016/10/L2026-12"}]
    assert by_type["part.collect"]["bizStep"] == "collecting"
    assert (by_type["part.recycle"]["bizStep"], by_type["part.recycle"]["disposition"]) == ("destroying",
                                                                                           "destroyed")
    repurpose = by_type["part.repurpose"]
    assert repurpose["type"] == "TransformationEvent"
    assert repurpose["outputEPCList"] == ["https://id.gs1.org/01/04012345000023/21/ZX9Y8W7V6U5T4S3R"]
    soh = by_type["battery.soh"]["sensorElementList"][0]["sensorReport"][0]
    assert soh == {"type": "Dimensionless", "value": 87, "uom": "P1"}
    claim = by_type["warranty.claim"]
    assert claim["bizStep"] == "pl:warranty_claim" and claim["pl:claim_id"] == "WC-1"
    assert claim["pl:evidence"] == [{"pl:sha256": "ab" * 32, "pl:media_type": "image/jpeg"}]
    grant = by_type["grant.issue"]
    assert grant["epcList"] == [] and grant["bizStep"] == "pl:grant_issue"
    assert grant["destinationList"] == [{"type": "pl:grantee", "destination": "https://id.gs1.org/414/4012345000023"}]
    assert grant["pl:activities"] == ["install", "repair"]
    # an org without a GLN is named in the extension namespace
    assert by_type["part.collect"]["sourceList"][0]["source"] == "https://id.gs1.org/414/4012345000023"


def test_org_without_gln_gets_an_org_uri() -> None:
    assert directory().party_uri("recycler-d") == vocab.NAMESPACE + "org/recycler-d"
    assert directory().org_for_uri(vocab.NAMESPACE + "org/recycler-d") == "recycler-d"
    assert directory().org_for_uri("https://id.gs1.org/414/9999999999994") is None


def test_types_without_supply_chain_meaning_are_not_exported() -> None:
    entry, sig = sample_entries()[0]
    for type_ in ("log.genesis", "org.register", "key.add", "key.revoke"):
        assert entry_to_event({**entry, "type": type_}, sig, ctx=CTX) is None


def _broken(index: int, change: Any) -> dict[str, Any]:
    event = copy.deepcopy(_events()[index][2])
    change(event)
    return event


@pytest.mark.parametrize(("change", "message"), [
    (lambda e: e.pop(SIGNED_ENTRY), "signature block"),
    (lambda e: e[SIGNED_ENTRY].pop("pl:sig"), "signature block"),
    (lambda e: e.update({"example:colour": "red"}), "would be lost"),
    (lambda e: e.update({"bizStep": "receiving"}), "bizStep shipping"),
    (lambda e: e.update({"pl:eventType": "part.teleport"}), "not an event type"),
    (lambda e: e.update({"epcList": ["urn:epc:id:sgtin:4012345.000001.9"]}), "Digital Link URI"),
    (lambda e: e.update({"epcList": [e["epcList"][0], e["epcList"][0]]}), "one part per event"),
    (lambda e: e.update({"destinationList": [{"type": "owning_party",
                                              "destination": "https://id.gs1.org/414/9999999999994"}]}),
     "names no registered org"),
    (lambda e: e.update({"pl:gtin": "04012345000016"}), "both as a standard EPCIS field and as an extension"),
    (lambda e: e.update({"pl:weight": 1.5}), "floats are not allowed"),
    (lambda e: e.update({"disposition": "damaged"}), "disposition"),
])
def test_capture_is_strict(change: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        event_to_native(_broken(4, change), ctx=CTX)


def test_event_type_is_inferred_when_unambiguous() -> None:
    event = _broken(3, lambda e: e.pop("pl:eventType"))
    assert event_to_native(event, ctx=CTX).type == "part.commission"
    event = _broken(4, lambda e: e.pop("pl:eventType"))  # shipping is both part.ship and part.return
    with pytest.raises(InvalidInput, match="pl:eventType"):
        event_to_native(event, ctx=CTX)


def test_event_time_with_offset_becomes_utc() -> None:
    event = _broken(3, lambda e: e.update({"eventTime": "2026-11-20T11:00:00.250+01:00",
                                           "eventTimeZoneOffset": "+01:00"}))
    assert event_to_native(event, ctx=CTX).time == "2026-11-20T10:00:00.25Z"
    event["eventTime"] = "2026-11-20t11:00:00z"
    assert event_to_native(event, ctx=CTX).time == "2026-11-20T11:00:00Z"
    event["eventTime"] = "2026-11-20T23:59:60+01:00"
    with pytest.raises(InvalidInput, match="eventTime"):
        event_to_native(event, ctx=CTX)


def test_index_declares_corrections_as_error_declarations() -> None:
    from ledger.entries import build_record, make_signed_entry
    from ledger.keys import KeyPair

    operator = KeyPair.from_seed(b"\x09" * 32)
    records = []
    prev = b"\x00" * 32

    def add(signed: SignedEntry) -> None:
        nonlocal prev
        record = build_record(len(records), prev, "2026-11-29T00:00:00Z", signed)
        records.append(record)
        prev = record.leaf_hash

    from ledger.keys import b64encode

    add(make_signed_entry(operator, origin=ORIGIN, type="log.genesis", org="partsledger-operator",
                          body={"org_id": "partsledger-operator", "name": "op",
                                "public_keys": [b64encode(operator.public_key)]}))
    for org, glns in directory().glns.items():
        add(make_signed_entry(operator, origin=ORIGIN, type="org.register", org="partsledger-operator",
                              body={"org_id": org, "kind": "workshop", "name": org, "glns": glns,
                                    "public_keys": [b64encode(KEYS[org].public_key)]}))
    for entry, sig in sample_entries()[3:6]:
        add(parse_signed_entry({"entry": entry, "sig": sig}))
    shipped = next(r for r in records if r.entry.type == "part.ship").entry.entry_id
    add(make_signed_entry(KEYS["supplier-b"], origin=ORIGIN, type="entry.correct", org="supplier-b",
                          body={"corrects": shipped, "reason": "wrong destination"}))
    index = EventIndex()
    index.feed(records)
    assert [i.event["pl:eventType"] for i in index.events] == ["part.commission", "part.ship", "part.receive",
                                                               "entry.correct"]
    ship, correction = index.events[1].event, index.events[3].event
    assert ship["errorDeclaration"] == {"declarationTime": correction["eventTime"], "reason": "incorrect_data",
                                        "correctiveEventIDs": [correction["eventID"]]}
    assert ship["eventID"] == index.by_entry_id[shipped].event["eventID"]
    assert ship["sourceList" if "sourceList" in ship else "destinationList"]
    assert load_validator(SCHEMA).problems(document(i.event for i in index.events)) == []
    with pytest.raises(ValueError, match="in order"):
        index.feed(records[:1])
