"""Server-rendered QR labels carry the commissioning org's AI 8030 signature recorded at commissioning.

The demo world commissions every part with ``part_sig``; the server's QR of
such a part decodes (zxing-cpp) to a Digital Link URI whose 8030 verifies
offline against the org keys in the signed trust bundle. A commissioning entry
with a forged ``part_sig`` is refused and nothing is appended.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import resvg_py
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from ledger.demo import build_demo
from ledger.digital_link import parse_uri, sign_part_id, verify_part_sig
from ledger.entries import make_signed_entry
from ledger.keys import KeyPair, b64decode, read_key_file
from ledger.log import Ledger
from ledger.trust_bundle import offline_verdict

QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)  # a label is a QR code, never a 1-D one


def _decode(image: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image, formats=QR_ONLY)]


def test_demo_parts_server_qr_verifies_offline_and_a_forged_part_sig_is_refused(
        client: TestClient, ledger: Ledger, tmp_path: Path) -> None:
    world = build_demo(ledger, read_key_file(tmp_path / "data-0" / "operator.key"), tmp_path / "data-0")
    vkey = client.get("/v1/log/key").json()["verifier_key"]
    envelope = client.get("/v1/trust-bundle").json()
    orgs = {o["org_id"]: o for o in envelope["bundle"]["orgs"]}
    for name, org in (("adas_radar", world.orgs["oem"]), ("hv_pack_0", world.orgs["supplier"]),
                      ("second_life_pack", world.orgs["recycler"])):
        gtin, serial = world.parts[name]
        png = client.get(f"/v1/parts/{gtin}/{serial}/qr.png", params={"scale": 4})
        assert png.status_code == 200, png.text
        [uri] = _decode(Image.open(io.BytesIO(png.content)))
        svg = client.get(f"/v1/parts/{gtin}/{serial}/qr.svg", params={"size_mm": 25})
        raster = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg.text, dpi=300))))
        flat = Image.new("RGB", raster.size, "white")
        flat.paste(raster, mask=raster.getchannel("A"))
        assert _decode(flat) == [uri]
        link = parse_uri(uri)
        assert (link.gtin, link.serial) == (gtin, serial) and link.sig is not None
        # offline: the bundle's keys of the commissioning org verify the label, nothing else is needed
        keys = [b64decode(k["public_key"], field="public_key", size=32) for k in orgs[org]["keys"]]
        verify_part_sig(keys[0], gtin, serial, link.sig)
        result = offline_verdict(uri, envelope, vkey, now=datetime.now(UTC))
        assert result.signed_by == org
        assert "signature_valid" in [r["code"] for r in result.to_json()["reasons"]]

    oem_key = read_key_file(world.key_files[world.orgs["oem"]])
    gtin = world.parts["adas_radar"][0]
    size = ledger.size()
    for forged in (sign_part_id(KeyPair.generate(), gtin, "FORGED0001"),  # someone else's key
                   sign_part_id(oem_key, gtin, "OTHER00001")):  # the org's key over another serial
        entry = make_signed_entry(oem_key, origin=ledger.origin, type="part.commission", org=world.orgs["oem"],
                                  body={"gtin": gtin, "serial": "FORGED0001", "category": "adas",
                                        "part_sig": forged})
        response = client.post("/v1/entries", json=entry.to_json())
        assert response.status_code == 403, response.text
        problem = response.json()
        assert problem["code"] == "bad_part_sig" and problem["field"] == "part_sig"
        assert f"01{gtin}21FORGED0001" in problem["detail"]
    assert ledger.size() == size
    assert client.get(f"/v1/parts/{gtin}/FORGED0001").status_code == 404
