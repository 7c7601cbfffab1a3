"""GET /v1/epcis/events and /v1/epcis/events/{eventID}: the EPCIS query subset over a real history."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.testclient import TestClient

from api.settings import ApiLimits
from ledger.epcis import vocab
from ledger.epcis.validate import load_validator
from tests.api.conftest import ClientFactory
from tests.ledger.epcis_files import SCHEMA


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
