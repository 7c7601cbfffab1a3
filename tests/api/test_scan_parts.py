"""Scanning real parts through the ASGI app: one test per verdict (JSON, HTML en + zh, linkset), workshop
authorization, the inclusion proof checked with the snippet from docs/scan.md, QR labels, the read API and
the trust bundle built from live grants and recalls."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import resvg_py
import zxingcpp
from biip import parse as biip_parse
from fastapi.testclient import TestClient
from PIL import Image

from api.scan_schemas import ScanVerdict
from ledger.digital_link import sign_part_id
from ledger.errors import LedgerError
from ledger.gs1 import make_gtin
from ledger.keys import KeyPair
from ledger.trust_bundle import offline_verdict
from tests.api.test_log_api import assert_problem
from tests.support import Actor, World

QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)  # a label is a QR code, never a 1-D one

PREFIX = "6901234"
GTIN = make_gtin(PREFIX, 7)
DOC = Path(__file__).resolve().parents[2] / "docs" / "scan.md"
JSON = {"Accept": "application/json"}


def vehicle(n: int) -> str:
    return "veh-" + ("abcdefghijklmnopqrstuvwxyz234567"[n % 32] * 52)


@dataclass
class Shop:
    world: World
    oem: Actor
    riyadh: Actor
    oslo: Actor
    mexico: Actor

    def commission(self, serial: str, lot: str = "L2606") -> None:
        self.world.append(self.oem, "part.commission", {"gtin": GTIN, "serial": serial, "lot": lot,
                                                        "category": "hv_battery"})

    def label(self, serial: str, lot: str | None = "L2606", key: KeyPair | None = None) -> str:
        sig = sign_part_id(key or self.oem.key, GTIN, serial)
        return f"/01/{GTIN}/21/{serial}" + (f"?10={lot}&8030={sig}" if lot else f"?8030={sig}")


@pytest.fixture
def shop(world: World) -> Shop:
    return make_shop(world)


def make_shop(world: World) -> Shop:
    """An OEM, three workshops (one authorized, one revoked, one independent) and a part for each verdict."""
    oem = world.register("shenzhen-ev", "oem", gs1_prefixes=[PREFIX], country="CN")
    riyadh = world.register("riyadh-ws", "workshop", country="SA")
    oslo = world.register("oslo-ws", "workshop", country="NO")
    mexico = world.register("mexico-indep", "workshop", country="MX")
    for grant_id, grantee in (("g-riyadh", "riyadh-ws"), ("g-oslo", "oslo-ws")):
        world.append(oem, "grant.issue", {"grant_id": grant_id, "kind": "workshop", "grantee": grantee,
                                          "activities": ["install", "repair"], "valid_from": "2026-01-01T00:00:00Z"})
    world.append(oem, "grant.revoke", {"grant_id": "g-oslo"})
    s = Shop(world, oem, riyadh, oslo, mexico)
    s.commission("GEN0K1")
    s.commission("RCL0K1", lot="BAD1")
    world.append(oem, "recall.set", {"campaign_id": "RC-2026-07", "gtin": GTIN, "lots": ["BAD1"],
                                     "reason_code": "thermal_runaway"})
    s.commission("SCR0K1")
    world.append(oem, "part.scrap", {"gtin": GTIN, "serial": "SCR0K1"})
    s.commission("CLN0K1")
    world.append(riyadh, "part.install", {"gtin": GTIN, "serial": "CLN0K1", "vehicle": vehicle(1)})
    world.append(riyadh, "part.install", {"gtin": GTIN, "serial": "CLN0K1", "vehicle": vehicle(2)})
    return s


def scan(client: TestClient, path: str, **headers: str) -> dict[str, Any]:
    response = client.get(path, headers={**JSON, **headers})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    ScanVerdict.model_validate(body)  # the documented response model holds for every verdict
    assert set(body) == set(ScanVerdict.model_fields)
    return body


def codes(verdict: dict[str, Any]) -> set[str]:
    return {r["code"] for r in verdict["reasons"]}


CASES = [
    ("GEN0K1", "L2606", "genuine", {"signature_valid"}, "Genuine part", "正品零件"),
    ("RCL0K1", "BAD1", "recalled", {"recalled", "signature_valid"}, "Recalled", "已召回"),
    ("SCR0K1", "L2606", "retired", {"retired", "signature_valid"}, "Retired", "已退役"),
    ("CLN0K1", "L2606", "suspect", {"flag", "installed", "signature_valid"}, "Suspect", "可疑"),
    ("NEW0K1", "L2606", "unknown", {"not_commissioned", "signature_valid"}, "Unknown part", "未知零件"),
]


@pytest.mark.parametrize(("serial", "lot", "expected", "reason_codes", "en", "zh"), CASES)
def test_each_verdict_in_json_html_and_linkset(client: TestClient, shop: Shop, serial: str, lot: str,
                                               expected: str, reason_codes: set[str], en: str, zh: str) -> None:
    path = shop.label(serial, lot)
    verdict = scan(client, path)
    assert verdict["verdict"] == expected
    assert reason_codes <= codes(verdict), verdict["reasons"]
    assert verdict["part"]["gtin"] == GTIN and verdict["part"]["serial"] == serial
    english = client.get(path, headers={"Accept": "text/html", "Accept-Language": "en"})
    assert f'data-verdict="{expected}"' in english.text and en in english.text
    chinese = client.get(path, headers={"Accept": "text/html", "Accept-Language": "zh-CN,zh;q=0.9"})
    assert f'data-verdict="{expected}"' in chinese.text and zh in chinese.text
    linkset = client.get(path + "&linkType=linkset").json()
    assert linkset["linkset"][0]["anchor"].endswith(f"/01/{GTIN}/21/{serial}")
    if expected != "unknown":
        assert verdict["commissioned_by"]["org_id"] == "shenzhen-ev"
        assert verdict["proof"] is not None
        assert verdict["history"][0]["type"] == "part.commission"
        # the page shows the same facts as the JSON: state and history
        assert verdict["state"] in english.text
        for event in verdict["history"]:
            assert event["type"] in english.text


def test_verdict_details(client: TestClient, shop: Shop) -> None:
    recalled = scan(client, shop.label("RCL0K1", "BAD1"))
    assert recalled["recalls"] == [{"campaign_id": "RC-2026-07", "reason": "thermal_runaway",
                                    "seq": recalled["recalls"][0]["seq"]}]
    clone = scan(client, shop.label("CLN0K1"))
    assert "clone_suspected" in {f["kind"] for f in clone["open_flags"]}
    assert clone["installation"]["vehicle"] in {vehicle(1), vehicle(2)}
    assert [e["type"] for e in clone["history"]] == ["part.commission", "part.install", "part.install"]
    assert clone["warranty"] == {"status": "none", "claims": []}
    mismatch = scan(client, shop.label("GEN0K1", lot="OTHER"))
    assert mismatch["verdict"] == "suspect" and "lot_mismatch" in codes(mismatch)
    forged = scan(client, shop.label("GEN0K1", key=KeyPair.generate()))
    assert forged["verdict"] == "suspect" and forged["signature"]["status"] == "invalid"
    unsigned = scan(client, f"/01/{GTIN}/21/GEN0K1")
    assert unsigned["verdict"] == "genuine" and "signature_missing" in codes(unsigned)


def test_caller_workshop_authorization(client: TestClient, shop: Shop) -> None:
    path = shop.label("GEN0K1")
    riyadh = scan(client, path + "&workshop=riyadh-ws")["authorization"]
    assert (riyadh["authorized"], riyadh["grant_id"], riyadh["status"]) == (True, "g-riyadh", "authorized")
    oslo = scan(client, path, **{"X-Workshop-Org": "oslo-ws"})["authorization"]
    assert (oslo["authorized"], oslo["status"], oslo["grant_id"]) == (False, "revoked", "g-oslo")
    mexico = scan(client, path + "&workshop=mexico-indep")["authorization"]
    assert (mexico["authorized"], mexico["status"]) == (False, "independent")
    scope = scan(client, path + "&workshop=riyadh-ws&activity=battery_dismantling")["authorization"]
    assert scope["status"] == "out_of_scope"
    stranger = scan(client, path + "&workshop=nobody-here")["authorization"]
    assert stranger["status"] == "unknown_org"
    assert scan(client, path)["authorization"] is None
    page = client.get(path + "&workshop=riyadh-ws", headers={"Accept": "text/html"}).text
    assert "Authorized" in page and "g-riyadh" in page


def _doc_snippet() -> Any:
    text = DOC.read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), str(DOC), "exec"), namespace)  # the documented client check, run as written
    return namespace["check_verdict_proof"]


def _flip(b64: str, index: int = 0) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_inclusion_proof_verifies_and_one_byte_breaks_it(client: TestClient, shop: Shop) -> None:
    check = _doc_snippet()
    vkey = client.get("/v1/log/key").json()["verifier_key"]
    origin = shop.world.ledger.origin
    verdict = scan(client, shop.label("CLN0K1"))
    record = check(verdict, vkey, origin)
    assert record["seq"] == verdict["proof"]["seq"] == verdict["history"][-1]["seq"]
    proof = verdict["proof"]
    assert proof["inclusion_proof"], "a non-trivial tree has a non-empty path"
    tampered = [
        {**proof, "inclusion_proof": [_flip(proof["inclusion_proof"][0]), *proof["inclusion_proof"][1:]]},
        {**proof, "record": _flip(proof["record"], 10)},
        {**proof, "leaf_hash": _flip(proof["leaf_hash"])},
        {**proof, "seq": proof["seq"] - 1},
        {**proof, "checkpoint": proof["checkpoint"].replace("\n", "\n ", 1)},
    ]
    lines = proof["checkpoint"].split("\n")
    lines[2] = _flip(lines[2])  # the root hash
    tampered.append({**proof, "checkpoint": "\n".join(lines)})
    for bad in tampered:
        with pytest.raises((LedgerError, AssertionError, ValueError)):
            check({**verdict, "proof": bad}, vkey, origin)


def _decode_png(content: bytes) -> list[str]:
    image = Image.open(io.BytesIO(content))
    return [r.text for r in zxingcpp.read_barcodes(image, formats=QR_ONLY)]


def test_qr_labels_decode_to_the_uri_and_are_cached(client: TestClient, shop: Shop) -> None:
    sig = sign_part_id(shop.oem.key, GTIN, "GEN0K1")
    png = client.get(f"/v1/parts/{GTIN}/GEN0K1/qr.png", params={"8030": sig, "scale": 4})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    [uri] = _decode_png(png.content)
    assert uri == f"http://testserver/01/{GTIN}/21/GEN0K1?10=L2606&8030={sig}"
    fields = {es.ai.ai: es.value for es in biip_parse(uri).gs1_digital_link_uri.element_strings}  # type: ignore[union-attr]
    assert (fields["01"], fields["21"], fields["10"], fields["8030"]) == (GTIN, "GEN0K1", "L2606", sig)
    assert png.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = png.headers["etag"]
    again = client.get(f"/v1/parts/{GTIN}/GEN0K1/qr.png", params={"8030": sig, "scale": 4},
                       headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
    svg = client.get(f"/v1/parts/{GTIN}/GEN0K1/qr.svg", params={"8030": sig, "size_mm": 25})
    assert svg.headers["content-type"].startswith("image/svg+xml")
    raster = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg.text, dpi=300))))
    flat = Image.new("RGB", raster.size, "white")
    flat.paste(raster, mask=raster.getchannel("A"))
    assert [r.text for r in zxingcpp.read_barcodes(flat, formats=QR_ONLY)] == [uri]
    assert svg.headers["etag"] != etag
    unsigned = client.get(f"/v1/parts/{GTIN}/GEN0K1/qr.png")
    assert _decode_png(unsigned.content) == [f"http://testserver/01/{GTIN}/21/GEN0K1?10=L2606"]
    forged = sign_part_id(KeyPair.generate(), GTIN, "GEN0K1")
    assert_problem(client.get(f"/v1/parts/{GTIN}/GEN0K1/qr.svg", params={"8030": forged}), 403, "bad_signature")
    assert_problem(client.get(f"/v1/parts/{GTIN}/NOPE1/qr.svg"), 404, "not_found")
    assert_problem(client.get(f"/v1/parts/{GTIN}/GEN0K1/qr.png", params={"ecc": "L"}), 422, "invalid_field")
    assert_problem(client.get(f"/v1/parts/{GTIN}/GEN0K1/qr.svg", params={"border": 2}), 422, "invalid_field")
    wrong = GTIN[:13] + str((int(GTIN[13]) + 1) % 10)
    assert_problem(client.get(f"/v1/parts/{wrong}/GEN0K1/qr.svg"), 422, "invalid_gtin")


def test_read_api_parts_grants_recalls_alerts(client: TestClient, shop: Shop) -> None:
    parts = client.get("/v1/parts", params={"gtin": GTIN, "limit": 3}).json()
    assert len(parts["items"]) == 3 and parts["next_offset"] == 3
    rest = client.get("/v1/parts", params={"gtin": GTIN, "limit": 3, "offset": 3}).json()
    assert len(rest["items"]) == 1 and rest["next_offset"] is None
    assert [p["serial"] for p in client.get("/v1/parts", params={"state": "scrapped"}).json()["items"]] == ["SCR0K1"]
    assert [p["serial"] for p in client.get("/v1/parts", params={"lot": "BAD1"}).json()["items"]] == ["RCL0K1"]
    detail = client.get(f"/v1/parts/{GTIN}/CLN0K1").json()
    assert detail["part"]["state"] == "installed" and len(detail["installations"]) == 2
    assert any(f["kind"] == "clone_suspected" and f["open"] for f in detail["flags"])
    assert_problem(client.get(f"/v1/parts/{GTIN}/NOPE1"), 404, "not_found")
    grants = client.get("/v1/grants", params={"grantor": "shenzhen-ev"}).json()["items"]
    assert {(g["grant_id"], g["status"]) for g in grants} == {("g-riyadh", "active"), ("g-oslo", "revoked")}
    assert all(g["technicians"] == [] for g in grants)  # the scope field is served, empty = any technician
    affected = client.get("/v1/recalls/RC-2026-07/affected").json()
    assert [p["serial"] for p in affected["items"]] == ["RCL0K1"] and affected["recall"]["lots"] == ["BAD1"]
    assert_problem(client.get("/v1/recalls/NOPE/affected"), 404, "not_found")
    alerts = client.get("/v1/alerts", params={"org": "shenzhen-ev"}).json()["items"]
    assert "clone_suspected" in {a["kind"] for a in alerts}
    assert client.get("/v1/claims", params={"gtin": GTIN}).json() == {"items": [], "next_offset": None}
    assert_problem(client.get("/v1/parts", params={"limit": 100000}), 400, "page_too_large")


def test_the_parts_list_says_what_each_part_says(client: TestClient, shop: Shop) -> None:
    """A listed part is the part's own JSON (``GET /v1/parts/{gtin}/{serial}``), field for field and type for
    type (``suspect`` a boolean, numbers numbers), whatever the state; the list is in commissioning order."""
    listed = client.get("/v1/parts", params={"limit": 1000}).json()["items"]
    assert len(listed) >= 4 and {p["state"] for p in listed} >= {"installed", "scrapped"}
    assert any(p["suspect"] for p in listed)
    for item in listed:
        assert item == client.get(f"/v1/parts/{item['gtin']}/{item['serial']}").json()["part"]
        assert type(item["suspect"]) is bool and type(item["commissioned_seq"]) is int
    order = [(p["commissioned_seq"], p["gtin"], p["serial"]) for p in listed]
    assert order == sorted(order)


def test_trust_bundle_from_live_state_judges_offline(client: TestClient, shop: Shop) -> None:
    vkey = client.get("/v1/log/key").json()["verifier_key"]
    envelope = client.get("/v1/trust-bundle").json()
    bundle = envelope["bundle"]
    assert {g["grant_id"] for g in bundle["grants"]} == {"g-riyadh", "g-oslo"}
    assert [r["campaign_id"] for r in bundle["recalls"]] == ["RC-2026-07"]
    now = datetime.now(UTC)

    def uri(serial: str, lot: str, key: KeyPair | None = None) -> str:
        return "https://scan.example" + shop.label(serial, lot, key)

    assert offline_verdict(uri("GEN0K1", "L2606"), envelope, vkey, now=now).verdict == "genuine"
    assert offline_verdict(uri("RCL0K1", "BAD1"), envelope, vkey, now=now).verdict == "recalled"
    assert offline_verdict(uri("GEN0K1", "L2606", KeyPair.generate()), envelope, vkey, now=now).verdict == "suspect"
    revoked = offline_verdict(uri("GEN0K1", "L2606"), envelope, vkey, now=now, workshop="oslo-ws")
    assert revoked.authorization is not None and not revoked.authorization.authorized
    assert revoked.authorization.status == "revoked"
    ok = offline_verdict(uri("GEN0K1", "L2606"), envelope, vkey, now=now, workshop="riyadh-ws")
    assert ok.authorization is not None and ok.authorization.grant_id == "g-riyadh"


def test_cached_verdicts_follow_every_append(client: TestClient, shop: Shop) -> None:
    path = shop.label("GEN0K1")
    first = scan(client, path)
    again = scan(client, path)
    cache = client.app.state.verdict_cache  # type: ignore[attr-defined]
    assert cache.hits >= 1 and again["proof"] == first["proof"] and again["verdict"] == "genuine"
    shop.world.append(shop.oem, "recall.set", {"campaign_id": "RC-2026-09", "gtin": GTIN, "lots": ["L2606"]})
    after = scan(client, path)
    assert after["verdict"] == "recalled"  # a new log size is a new cache key: never stale
    assert after["proof"]["tree_size"] > first["proof"]["tree_size"]
