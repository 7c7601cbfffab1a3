"""GET /v1/epcis/events and /v1/epcis/events/{eventID}: the EPCIS query subset over a real history."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiLimits, ApiSettings
from ledger.epcis import vocab
from ledger.epcis.capture import ledger_directory, sign_document
from ledger.epcis.event_hash import event_hash
from ledger.epcis.export import document
from ledger.epcis.mapping import PREFIXES, RULES
from ledger.epcis.validate import load_validator
from ledger.log import Ledger
from ledger.service import LedgerSettings
from ledger.storage.domain_repo import DomainRepo
from ledger.storage.state import row_dict
from tests.api.conftest import ClientFactory
from tests.api.epcis_history import GTIN_BRAKE, ORGS, VEHICLE_1, History, build_history, register_orgs
from tests.ledger.epcis_files import SCHEMA, reference_hashes
from tests.support import World

LD = {"content-type": "application/ld+json"}


def test_empty_log_answers_a_valid_query_document(client: TestClient) -> None:
    response = client.get("/v1/epcis/events")
    assert response.status_code == 200
    doc = response.json()
    assert doc["type"] == "EPCISQueryDocument"
    assert doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == []
    assert load_validator(SCHEMA).problems(doc) == []
    assert "link" not in response.headers


def test_bad_query_parameters_are_4xx(api_factory: ClientFactory) -> None:
    client = api_factory(limits=ApiLimits(max_page=50))
    assert client.get("/v1/epcis/events", params={"perPage": 51}).status_code == 400
    assert client.get("/v1/epcis/events", params={"perPage": 0}).status_code == 422
    bad_time = client.get("/v1/epcis/events", params={"GE_eventTime": "yesterday"})
    assert bad_time.status_code == 422 and bad_time.json()["field"] == "GE_eventTime"
    bad_token = client.get("/v1/epcis/events", params={"nextPageToken": "bm9wZQ"})
    assert bad_token.status_code == 422 and "nextPageToken" in bad_token.json()["detail"]
    missing = client.get("/v1/epcis/events/" + quote("ni:///sha-256;" + "0" * 64 + "?ver=CBV2.0", safe=""))
    assert missing.status_code == 404


def test_extension_context_is_served(client: TestClient) -> None:
    response = client.get("/v1/epcis/context.jsonld")
    assert response.status_code == 200
    assert response.json()["@context"][vocab.PREFIX] == vocab.NAMESPACE


# --- over a full history ----------------------------------------------------------------------------------
Events = list[dict[str, Any]]


@pytest.fixture
def history(world: World) -> History:
    return build_history(world)


def _all(client: TestClient, **params: Any) -> Events:
    response = client.get("/v1/epcis/events", params={"perPage": 1000, **params})
    assert response.status_code == 200, response.text
    events: Events = response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return events


def _types(events: Events) -> list[str]:
    return [e["pl:eventType"] for e in events]


def test_full_history_exports_every_type_valid_and_hashed(client: TestClient, history: History) -> None:
    response = client.get("/v1/epcis/events", params={"perPage": 1000})
    doc = response.json()
    events = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert set(_types(events)) == set(RULES)  # every exported entry type occurs
    assert _types(events) == [t for t in history.types if t in RULES]
    assert load_validator(SCHEMA).problems(doc) == []
    assert [e["eventID"] for e in events] == reference_hashes(document(events))
    assert len({e["eventID"] for e in events}) == len(events)


def test_filters(client: TestClient, history: History) -> None:
    brake = vocab.part_uri(*history.parts["brake"])
    assert _types(_all(client, EQ_bizStep="installing")) == ["part.install", "part.install"]
    assert _types(_all(client, EQ_bizStep="https://ref.gs1.org/cbv/BizStep-removing|collecting")) == [
        "part.remove", "part.remove", "part.collect", "part.collect"]
    assert _types(_all(client, EQ_disposition="non_conformant")) == ["part.inspect"]
    assert _types(_all(client, EQ_persistentDisposition_set="recalled")) == ["recall.set"]
    brake_events = _all(client, MATCH_anyEPC=brake)
    assert "part.commission" in _types(brake_events) and "part.install" in _types(brake_events)
    assert all(brake in json.dumps(e) for e in brake_events)
    other_resolver = brake.replace("https://id.gs1.org", "https://parts.example.com")
    assert _all(client, MATCH_anyEPC=other_resolver) == brake_events
    whole_gtin = _all(client, MATCH_anyEPC=vocab.class_uri(history.parts["brake"][0]))
    assert len(whole_gtin) > len(brake_events)  # the spare's events and the recall's lot class too
    assert "recall.set" in _types(whole_gtin)
    vehicle = _all(client, MATCH_parentID=vocab.vehicle_uri(VEHICLE_1))
    assert _types(vehicle) == ["part.install", "part.remove"]
    declared = _all(client, EXISTS_errorDeclaration="true")
    assert _types(declared) == ["part.ship"]
    correction = _all(client, EQ_bizStep="pl:correcting")[0]
    assert _all(client, EQ_bizStep=vocab.NAMESPACE + "correcting") == [correction]
    assert declared[0]["errorDeclaration"]["correctiveEventIDs"] == [correction["eventID"]]
    everything = _all(client)
    middle = everything[len(everything) // 2]["eventTime"]
    before, after = _all(client, LT_eventTime=middle), _all(client, GE_eventTime=middle)
    assert before + after == everything and before and after


def test_paging_with_link_headers(client: TestClient, history: History) -> None:
    everything = _all(client)
    seen: Events = []
    url: str | None = "/v1/epcis/events?perPage=4&MATCH_anyEPC=" + quote(vocab.class_uri(GTIN_BRAKE), safe="")
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        page = response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert 0 < len(page) <= 4
        seen += page
        pages += 1
        link = response.headers.get("link")
        url = link[1:link.index(">")] if link else None
        if url:
            assert 'rel="next"' in link
            assert "nextPageToken=" in url
    assert pages >= 3
    assert seen == [e for e in everything if e in seen] and len({e["eventID"] for e in seen}) == len(seen)
    assert seen == _all(client, MATCH_anyEPC=vocab.class_uri(GTIN_BRAKE))
    token = client.get(f"/v1/epcis/events?perPage=4&MATCH_anyEPC={quote(vocab.class_uri(GTIN_BRAKE), safe='')}"
                       ).headers["link"].split("nextPageToken=")[1].split(">")[0]
    other_query = client.get("/v1/epcis/events", params={"perPage": 4, "nextPageToken": token})
    assert other_query.status_code == 422


def test_single_event_by_id(client: TestClient, history: History) -> None:
    event = _all(client, EQ_bizStep="installing")[0]
    response = client.get("/v1/epcis/events/" + quote(event["eventID"], safe=""))
    assert response.status_code == 200
    body = response.json()
    assert body.pop("@context") == vocab.DOCUMENT_CONTEXT
    assert body == event


def _part_states(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Every part's projected state, minus the log's own wall-clock times (which differ between ledgers)."""
    with ledger.db.read() as session:
        parts = DomainRepo(session).list_parts(limit=10_000)
        return {f"{p.gtin}/{p.serial}": {k: v for k, v in row_dict(p).items() if k != "first_installed_at"}
                for p in parts}


def _split_at_corrections(events: Events) -> list[Events]:
    """Documents such that an ``entry.correct`` comes after the document holding what it corrects.

    (A batch's handlers run before its records are written, so a correction cannot
    point at an entry of its own batch.)
    """
    chunks: list[Events] = [[]]
    for event in events:
        if event["pl:eventType"] == "entry.correct":
            chunks.append([])
        chunks[-1].append(event)
    return [c for c in chunks if c]


def test_round_trip_export_capture_into_a_fresh_ledger(client: TestClient, history: History, ledger: Ledger,
                                                        ledger_factory: Any, tmp_path: Path) -> None:
    exported = document(_all(client))
    fresh = ledger_factory()  # same origin, new operator, empty but for genesis
    assert fresh.origin == ledger.origin
    world = World.open(fresh, tmp_path / "data-1" / "operator.key")
    register_orgs(world, keys=history.keys)  # the same orgs with the same keys; grants come in the capture
    app = create_app(ApiSettings(ledger=LedgerSettings(db_url=fresh.db.url, origin=fresh.origin)), ledger=fresh)
    with TestClient(app, base_url="http://testserver") as other:
        results = []
        for chunk in _split_at_corrections(exported["epcisBody"]["eventList"]):
            response = other.post("/v1/epcis/capture", content=json.dumps(document(chunk)), headers=LD)
            assert response.status_code == 201, response.text
            results += response.json()["events"]
        assert [e["eventID"] for e in results] == [e["eventID"] for e in exported["epcisBody"]["eventList"]]
        assert not any(e["duplicate"] for e in results)
        assert _part_states(fresh) == _part_states(ledger)
        assert len(_part_states(fresh)) == 4
        again = _all(other)
        for event in (*again, *exported["epcisBody"]["eventList"]):
            del event["recordTime"]  # the log's own time differs; everything else is the same
        assert again == exported["epcisBody"]["eventList"]  # same events, ids and error declarations
        size = fresh.size()
        repeat = other.post("/v1/epcis/capture", content=json.dumps(exported), headers=LD)
        assert repeat.status_code == 201 and all(e["duplicate"] for e in repeat.json()["events"])
        assert fresh.size() == size


def test_tampered_or_misattributed_events_are_refused_whole(client: TestClient, history: History,
                                                           ledger: Ledger) -> None:
    events = _all(client)
    size = ledger.size()
    install = next(i for i, e in enumerate(events) if e["pl:eventType"] == "part.install")
    tampered = copy.deepcopy(events)
    tampered[install]["pl:odometer_km"] = 99
    response = client.post("/v1/epcis/capture", content=json.dumps(document(tampered)), headers=LD)
    assert response.status_code == 422 and "CBV 2.0 hash" in response.json()["detail"]  # the id no longer fits
    tampered[install]["eventID"] = event_hash(tampered[install], PREFIXES)  # a forger would recompute it
    response = client.post("/v1/epcis/capture", content=json.dumps(document(tampered)), headers=LD)
    assert response.status_code == 403
    problem = response.json()
    assert problem["code"] == "bad_signature"
    assert problem["errors"][0]["index"] == install
    assert {e["code"] for e in problem["errors"][1:]} == {"not_appended"}
    assert len(problem["errors"]) == len(events)
    stolen = copy.deepcopy(events[:1])
    stolen[0]["pl:signedEntry"]["pl:org"] = "workshop-c"
    del stolen[0]["eventID"]  # optional in EPCIS
    response = client.post("/v1/epcis/capture", content=json.dumps(document(stolen)), headers=LD)
    assert response.status_code == 403 and response.json()["code"] == "unknown_key"
    assert ledger.size() == size


def test_partner_signs_a_new_document(client: TestClient, history: History, ledger: Ledger) -> None:
    new_part = {"gtin": GTIN_BRAKE, "serial": "BRK0000000000099"}
    site = ORGS["oem-a"]["glns"][0]
    doc = document([{
        "type": "ObjectEvent", "eventTime": "2026-01-01T00:00:00+01:00", "eventTimeZoneOffset": "+01:00",
        "epcList": [vocab.part_uri(new_part["gtin"], new_part["serial"])], "action": "ADD",
        "bizStep": "commissioning", "disposition": "active", "bizLocation": {"id": vocab.gln_uri(site)},
        "pl:category": "brakes",
    }])
    now = datetime.now(UTC).replace(microsecond=0)
    doc["epcisBody"]["eventList"][0]["eventTime"] = now.isoformat()
    signed = sign_document(doc, {0: ("oem-a", history.keys["oem-a"])}, origin=ledger.origin,
                           directory=ledger_directory(ledger))
    response = client.post("/v1/epcis/capture", content=json.dumps(signed), headers=LD)
    assert response.status_code == 201, response.text
    with ledger.db.read() as session:
        part = DomainRepo(session).get_part(new_part["gtin"], new_part["serial"])
        assert part is not None and part.state == "commissioned" and part.commissioned_by == "oem-a"
    record = ledger.record(response.json()["events"][0]["seq"])
    assert record.entry.data["body"] == {**new_part, "category": "brakes", "site": site}
    assert record.entry.time == now.strftime("%Y-%m-%dT%H:%M:%SZ")
    unsigned = copy.deepcopy(signed)
    unsigned["epcisBody"]["eventList"][0]["pl:signedEntry"]["pl:kid"] = history.keys["supplier-b"].kid
    response = client.post("/v1/epcis/capture", content=json.dumps(unsigned), headers=LD)
    assert response.status_code == 403
