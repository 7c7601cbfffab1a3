"""The issue-3 stories through the public HTTP API: signed entries POSTed to /v1/entries.

Each write goes through the real ASGI app (admission, policy, problem
details); the resulting state is read back through the query module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from ledger import queries
from ledger.log import Ledger
from ledger.service import LedgerSettings
from tests.ledger.domain_support import GTIN_BRAKE, GTIN_FOREIGN, VALID_FROM, DomainWorld, build, vehicle
from tests.support import Actor, World


@pytest.fixture
def client(ledger: Ledger) -> Iterator[TestClient]:
    settings = ApiSettings(ledger=LedgerSettings(db_url=ledger.db.url, origin=ledger.origin))
    with TestClient(create_app(settings, ledger=ledger), base_url="http://testserver") as c:
        yield c


def post(client: TestClient, d: DomainWorld, actor: Actor, type: str, body: dict[str, Any]) -> Any:
    return client.post("/v1/entries", json=d.world.entry(actor, type, body).to_json())


def refused(client: TestClient, d: DomainWorld, actor: Actor, type: str, body: dict[str, Any], status: int,
            code: str) -> dict[str, Any]:
    size = d.world.ledger.size()
    response = post(client, d, actor, type, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code and problem["detail"]
    assert d.world.ledger.size() == size
    return dict(problem)


def test_install_stories_over_http(client: TestClient, world: World) -> None:
    d = build(world)
    part = d.commission()
    d.deliver(part, d.workshop)
    ok = post(client, d, d.workshop, "part.install", {"gtin": part[0], "serial": part[1], "vehicle": vehicle("a")})
    assert ok.status_code == 201 and ok.json()["flags"] == []
    clone = post(client, d, d.independent, "part.install", {"gtin": part[0], "serial": part[1],
                                                            "vehicle": vehicle("b")})
    assert clone.status_code == 201
    assert sorted(f["kind"] for f in clone.json()["flags"]) == ["clone_suspected", "independent_service"]
    assert queries.get_part(world.ledger.db, *part)["suspect"]

    d.append(d.oem, "recall.set", {"campaign_id": "RC-H", "gtin": GTIN_BRAKE, "lots": ["L1"]})
    refused(client, d, d.workshop, "warranty.claim", {"claim_id": "C-H", "gtin": part[0], "serial": part[1],
                                                      "failure_code": "BRK01"}, 403, "part_recalled")
    assert queries.get_part(world.ledger.db, *part)["recalled"]

    d.append(d.oem, "grant.revoke", {"grant_id": "g-workshop"})
    later = d.commission(lot="L2")
    revoked = post(client, d, d.workshop, "part.install", {"gtin": later[0], "serial": later[1],
                                                           "vehicle": vehicle("c")})
    assert revoked.status_code == 201 and [f["kind"] for f in revoked.json()["flags"]] == ["grant_revoked"]


def test_bad_input_over_http_is_4xx_and_appends_nothing(client: TestClient, world: World) -> None:
    d = build(world)
    refused(client, d, d.supplier, "part.commission", {"gtin": GTIN_FOREIGN, "serial": "X1", "category": "brakes"},
            403, "prefix_not_granted")
    refused(client, d, d.workshop, "part.install", {"gtin": GTIN_BRAKE, "serial": "NEVER", "vehicle": vehicle("a")},
            404, "unknown_part")
    refused(client, d, d.oem, "grant.issue", {"grant_id": "g-z", "kind": "workshop", "grantee": "ghost-org",
                                              "activities": ["install"], "valid_from": VALID_FROM}, 404,
            "unknown_org")
    wrong = GTIN_BRAKE[:13] + str((int(GTIN_BRAKE[13]) + 3) % 10)
    problem = refused(client, d, d.oem, "part.commission", {"gtin": wrong, "serial": "X2", "category": "brakes"},
                      422, "invalid_gtin")
    assert GTIN_BRAKE in problem["detail"]  # says what would have been accepted
    refused(client, d, d.oem, "part.commission", {"gtin": GTIN_BRAKE, "serial": "X 3", "category": "brakes"},
            422, "invalid_serial")
    refused(client, d, d.oem, "grant.issue", {"grant_id": "g-w", "kind": "workshop", "grantee": d.workshop.org,
                                              "activities": ["install"], "valid_from": "2027-01-01T00:00:00Z",
                                              "valid_until": "2026-01-01T00:00:00Z"}, 422, "invalid_period")
