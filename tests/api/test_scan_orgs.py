"""The scan resolver and read API on orgs and keys: paging, problems, negotiation, rate limit, trust bundle."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from gs1 import compress_gs1_digital_link

from api.settings import ApiLimits
from ledger.digital_link import _compression_tables, build_uri, sign_part_id
from ledger.gs1 import make_gtin
from ledger.keys import KeyPair
from ledger.trust_bundle import offline_verdict, verify_bundle
from tests.api.conftest import ClientFactory
from tests.api.test_log_api import assert_problem
from tests.support import Actor, World

PREFIX = "6901234"
GTIN = make_gtin(PREFIX, 1)


@pytest.fixture
def oem(world: World) -> Actor:
    return world.register("shenzhen-ev", "oem", gs1_prefixes=[PREFIX], country="CN")


def test_orgs_are_paged_and_detailed(client: TestClient, world: World, oem: Actor) -> None:
    for name in ("oslo-ws", "riyadh-ws", "mexico-ws"):
        world.register(name, "workshop")
    first = client.get("/v1/orgs", params={"limit": 2}).json()
    assert [o["org_id"] for o in first["items"]] == ["partsledger-operator", "shenzhen-ev"]
    assert first["next_offset"] == 2
    second = client.get("/v1/orgs", params={"limit": 2, "offset": 2}).json()
    assert [o["org_id"] for o in second["items"]] == ["oslo-ws", "riyadh-ws"]
    last = client.get("/v1/orgs", params={"limit": 2, "offset": 4}).json()
    assert [o["org_id"] for o in last["items"]] == ["mexico-ws"] and last["next_offset"] is None
    shops = client.get("/v1/orgs", params={"kind": "workshop"}).json()["items"]
    assert {o["org_id"] for o in shops} == {"oslo-ws", "riyadh-ws", "mexico-ws"}
    detail = client.get("/v1/orgs/shenzhen-ev").json()
    assert detail["gs1_prefixes"] == [PREFIX]
    assert [k["kid"] for k in detail["keys"]] == [oem.key.kid]
    assert_problem(client.get("/v1/orgs/nobody-here"), 404, "unknown_org")
    assert_problem(client.get("/v1/orgs", params={"limit": 5000}), 400, "page_too_large")
    assert_problem(client.get("/v1/orgs", params={"offset": -1}), 422, "invalid_field")


def test_scan_of_an_unknown_part(client: TestClient, oem: Actor) -> None:
    sig = sign_part_id(oem.key, GTIN, "NEVERMADE1")
    verdict = client.get(f"/01/{GTIN}/21/NEVERMADE1", params={"8030": sig},
                         headers={"Accept": "application/json"}).json()
    assert verdict["verdict"] == "unknown"
    assert "not_commissioned" in [r["code"] for r in verdict["reasons"]]
    assert verdict["signature"] == {"status": "valid", "signed_by": "shenzhen-ev"}
    assert verdict["proof"] is None and verdict["history"] == []
    forged = sign_part_id(KeyPair.generate(), GTIN, "NEVERMADE1")
    bad = client.get(f"/01/{GTIN}/21/NEVERMADE1?8030={forged}", headers={"Accept": "application/json"}).json()
    assert bad["verdict"] == "suspect"
    assert bad["signature"]["status"] == "invalid"


def test_bad_identifiers_are_named(client: TestClient) -> None:
    wrong = GTIN[:13] + str((int(GTIN[13]) + 1) % 10)
    assert_problem(client.get(f"/01/{wrong}/21/ABC"), 422, "invalid_gtin", "check digit")
    assert_problem(client.get(f"/01/{GTIN[1:]}/21/ABC"), 422, "invalid_gtin")
    assert_problem(client.get(f"/01/{GTIN}/21/A~B"), 422, "invalid_serial", "'~'")
    assert_problem(client.get(f"/01/{GTIN}/21/{'X' * 21}"), 422, "invalid_serial")
    assert_problem(client.get(f"/01/{GTIN}/21/ABC", params={"8030": "short"}), 422, "invalid_field")
    assert_problem(client.get(f"/01/{GTIN}/21/ABC", params={"10": "L~1"}), 422, "invalid_field")
    assert_problem(client.get(f"/01/{GTIN}/21/ABC", params={"workshop": "NOT VALID"}), 422, "invalid_field")


def test_content_negotiation_and_languages(client: TestClient, oem: Actor) -> None:
    url = f"/01/{GTIN}/21/SER1"
    html = client.get(url, headers={"Accept": "text/html", "Accept-Language": "en-GB,en;q=0.8"})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert html.headers["content-language"] == "en"
    assert 'data-verdict="unknown"' in html.text and "Unknown part" in html.text
    assert "<script" not in html.text and "http://" not in html.text.replace("http://testserver", "")
    zh = client.get(url, headers={"Accept": "text/html", "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert zh.headers["content-language"] == "zh" and "未知零件" in zh.text and 'lang="zh"' in zh.text
    switched = client.get(url, params={"lang": "en"}, headers={"Accept-Language": "zh-CN"})
    assert switched.headers["content-language"] == "en"
    assert "lang=zh" in switched.text  # the switch links to the other language
    as_json = client.get(url, params={"format": "json"})
    assert as_json.headers["content-type"] == "application/json"
    linkset = client.get(url, params={"linkType": "linkset"})
    assert linkset.headers["content-type"].startswith("application/linkset+json")
    entry = linkset.json()["linkset"][0]
    assert entry["anchor"] == f"http://testserver/01/{GTIN}/21/SER1"
    assert entry["https://gs1.org/voc/defaultLink"][0]["hreflang"] == ["en", "zh"]
    assert "https://gs1.org/voc/verificationService" in entry
    by_accept = client.get(url, headers={"Accept": "application/linkset+json"})
    assert by_accept.json() == linkset.json()


def test_compressed_digital_link_resolves(client: TestClient, oem: Actor) -> None:
    _compression_tables()
    sig = sign_part_id(oem.key, GTIN, "CMP9K2")
    full = build_uri("http://testserver", GTIN, "CMP9K2", lot="LOTK1", sig=sig)
    compressed = compress_gs1_digital_link(digital_link_uri=full, use_optimizations=False,
                                           compress_other_key_value_pairs=False)
    path = compressed.removeprefix("http://testserver")
    verdict = client.get(path, headers={"Accept": "application/json"}).json()
    assert verdict["part"]["gtin"] == GTIN and verdict["part"]["serial"] == "CMP9K2"
    assert verdict["part"]["label_lot"] == "LOTK1"
    assert verdict["signature"]["status"] == "valid"
    assert client.get("/definitely-not-a-dl.txt").status_code == 404
    assert_problem(client.get("/AAAAAAAAAAAAAAAAAAAA"), 422, "invalid_uri")


def test_scan_path_is_rate_limited(api_factory: ClientFactory) -> None:
    client = api_factory(limits=ApiLimits(scan_rate_per_minute=6, scan_burst=3))
    url = f"/01/{GTIN}/21/RATE1?format=json"
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get(url)
    problem = assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) == 10  # one token per 10 s at 6/min
    assert problem["retry_after"] == 10
    assert client.get("/v1/orgs").status_code == 200  # only the scan path is limited


def test_trust_bundle_verifies_offline_against_the_pinned_log_key(client: TestClient, oem: Actor) -> None:
    vkey = client.get("/v1/log/key").json()["verifier_key"]
    response = client.get("/v1/trust-bundle")
    assert response.status_code == 200
    envelope = response.json()
    now = datetime.now(UTC)
    verified = verify_bundle(envelope, vkey, now=now)
    assert verified.version == verified.checkpoint.size == client.app.state.ledger.size()  # type: ignore[attr-defined]
    assert {o["org_id"] for o in envelope["bundle"]["orgs"]} >= {"partsledger-operator", "shenzhen-ev"}
    uri = build_uri("https://scan.example", GTIN, "OFF1", sig=sign_part_id(oem.key, GTIN, "OFF1"))
    assert offline_verdict(uri, envelope, vkey, now=now).verdict == "genuine"
    forged = build_uri("https://scan.example", GTIN, "OFF1", sig=sign_part_id(KeyPair.generate(), GTIN, "OFF1"))
    assert offline_verdict(forged, envelope, vkey, now=now).verdict == "suspect"
    short = client.get("/v1/trust-bundle", params={"ttl_hours": 1}).json()["bundle"]
    issued = datetime.strptime(short["issued_at"], "%Y-%m-%dT%H:%M:%SZ")
    expires = datetime.strptime(short["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert (expires - issued).total_seconds() == 3600
    assert_problem(client.get("/v1/trust-bundle", params={"ttl_hours": 0}), 422, "invalid_field")
