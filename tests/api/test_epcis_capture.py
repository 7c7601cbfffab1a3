"""POST /v1/epcis/capture refuses what it must, with a 4xx that names the problem, and appends nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledger.epcis import vocab
from ledger.epcis.validate import SCHEMA_ENV
from ledger.log import Ledger
from tests.ledger.epcis_files import EXAMPLES, INVALID, load
from tests.ledger.test_epcis_validate import EXPECTED

LD = {"content-type": "application/ld+json"}


def _post(client: TestClient, document: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = client.post("/v1/epcis/capture", content=json.dumps(document), headers=LD)
    assert response.headers["content-type"].startswith("application/problem+json") or response.status_code < 300
    return response.status_code, response.json()


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_documents_are_refused_and_nothing_is_appended(client: TestClient, ledger: Ledger,
                                                               path: Path) -> None:
    before = ledger.size()
    status, problem = _post(client, load(path))
    assert status == 422
    assert problem["code"] == "invalid_epcis"
    assert problem["errors"], problem
    assert any(EXPECTED[path.name] in e["detail"] for e in problem["errors"]), problem["errors"]
    assert EXPECTED[path.name] in problem["detail"] or len(problem["errors"]) > 1
    assert ledger.size() == before


def test_valid_but_unsigned_events_are_refused(client: TestClient, ledger: Ledger) -> None:
    doc = load(next(p for p in EXAMPLES if p.name == "Example_9.6.1-ObjectEvent.jsonld"))
    status, problem = _post(client, doc)
    assert status == 422
    assert "@context" in problem["detail"] and vocab.NAMESPACE in problem["detail"]
    doc["@context"] = [vocab.EPCIS_CONTEXT, {"pl": vocab.NAMESPACE}]
    status, problem = _post(client, doc)
    assert status in (403, 422)
    events = len(doc["epcisBody"]["eventList"])
    assert len(problem["errors"]) == events
    assert all(e["index"] == i for i, e in enumerate(problem["errors"]))
    assert ledger.size() == 1


def test_document_rules(client: TestClient, ledger: Ledger) -> None:
    doc = load(EXAMPLES[0])
    doc["@context"] = [vocab.EPCIS_CONTEXT, {"pl": vocab.NAMESPACE}]
    doc["epcisBody"]["eventList"] = []
    status, problem = _post(client, doc)
    assert status == 422 and "at least one event" in problem["detail"]
    query = load(next(p for p in EXAMPLES if p.name == "EPCISQueryDocument.jsonld"))
    status, problem = _post(client, query)
    assert status == 422 and "EPCISDocument" in problem["detail"]
    response = client.post("/v1/epcis/capture", content=b"", headers=LD)
    assert response.status_code == 400
    response = client.post("/v1/epcis/capture", content=b"<xml/>", headers={"content-type": "application/xml"})
    assert response.status_code == 400
    assert ledger.size() == 1


def test_capture_without_a_schema_is_refused_clearly(client: TestClient, ledger: Ledger,
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SCHEMA_ENV, str(tmp_path / "missing.json"))
    status, problem = _post(client, load(EXAMPLES[0]))
    assert status == 503
    assert problem["code"] == "epcis_unavailable"
    assert SCHEMA_ENV in problem["detail"]
    assert ledger.size() == 1
