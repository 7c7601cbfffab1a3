"""The demo world in EPCIS: every exported event of a realistic history is valid, hashed right, and capturable."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from ledger.demo import build_demo
from ledger.entries import make_signed_entry
from ledger.epcis.export import document
from ledger.epcis.mapping import RULES
from ledger.epcis.validate import load_validator
from ledger.keys import read_key_file
from ledger.log import Ledger
from ledger.service import LedgerSettings
from ledger.storage.domain_repo import DomainRepo
from ledger.storage.state import row_dict
from tests.ledger.epcis_files import SCHEMA, reference_hashes

LD = {"content-type": "application/ld+json"}
Events = list[dict[str, Any]]


def _events(client: TestClient) -> Events:
    response = client.get("/v1/epcis/events", params={"perPage": 1000})
    assert response.status_code == 200
    assert "link" not in response.headers
    events: Events = response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return events


def _parts(ledger: Ledger) -> dict[str, dict[str, Any]]:
    with ledger.db.read() as session:
        return {f"{p.gtin}/{p.serial}": {k: v for k, v in row_dict(p).items() if k != "first_installed_at"}
                for p in DomainRepo(session).list_parts(limit=10_000)}


def test_demo_history_exports_valid_hashed_events(client: TestClient, ledger: Ledger, tmp_path: Path) -> None:
    build_demo(ledger, read_key_file(tmp_path / "data-0" / "operator.key"), tmp_path / "data-0")
    logged = Counter(ledger.record(seq).entry.type for seq in range(ledger.size()))
    doc = document(_events(client))
    events = doc["epcisBody"]["eventList"]
    exported = Counter(e["pl:eventType"] for e in events)
    assert exported == Counter({t: n for t, n in logged.items() if t in RULES})  # each such record, once
    assert len(exported) >= 15, exported  # the demo exercises most of the catalogue
    assert load_validator(SCHEMA).problems(doc) == []
    assert [e["eventID"] for e in events] == reference_hashes(doc)
    kinds = Counter(e["type"] for e in events)
    assert {"ObjectEvent", "AssociationEvent", "TransformationEvent"} <= set(kinds)


def test_demo_history_round_trips_through_capture(client: TestClient, ledger: Ledger, ledger_factory: Any,
                                                  tmp_path: Path) -> None:
    data_dir = tmp_path / "data-0"
    demo = build_demo(ledger, read_key_file(data_dir / "operator.key"), data_dir)
    events = _events(client)
    fresh = ledger_factory()
    operator = read_key_file(tmp_path / "data-1" / "operator.key")
    registrations = [ledger.record(seq).entry for seq in range(ledger.size())]
    fresh.append_batch([  # the same orgs, with the same public keys, registered by the fresh ledger's operator
        make_signed_entry(operator, origin=fresh.origin, type="org.register", org="partsledger-operator",
                          body=entry.body)
        for entry in registrations if entry.type == "org.register"])
    assert set(demo.key_files) >= {e.org for e in registrations if e.type in RULES}
    app = create_app(ApiSettings(ledger=LedgerSettings(db_url=fresh.db.url, origin=fresh.origin)), ledger=fresh)
    with TestClient(app, base_url="http://testserver") as other:
        chunk: Events = []
        for event in [*events, None]:
            if event is None or (event["pl:eventType"] == "entry.correct" and chunk):
                response = other.post("/v1/epcis/capture", content=json.dumps(document(chunk)), headers=LD)
                assert response.status_code == 201, response.text[:2000]
                chunk = []
            if event is not None:
                chunk.append(event)
        assert _parts(fresh) == _parts(ledger)
        again = _events(other)
    for event in (*again, *events):
        del event["recordTime"]
    assert again == events
