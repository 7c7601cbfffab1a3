"""The SDK against the real app: signing locally, verified receipts, remembered checkpoints."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from clients.sdk import PartsLedger
from ledger.errors import Conflict, IntegrityError, SignatureError
from ledger.keys import KeyPair, b64encode
from tests.clients.conftest import Server

QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)  # a label is a QR code, never a 1-D one

OPERATOR = "partsledger-operator"


def _register(client: PartsLedger, server: Server, org_id: str, kind: str = "workshop") -> KeyPair:
    key = KeyPair.generate()
    client.submit(server.operator, org=OPERATOR, type="org.register",
                  body={"org_id": org_id, "kind": kind, "name": org_id.title(),
                        "public_keys": [b64encode(key.public_key)]})
    return key


def test_submit_returns_a_verified_receipt_and_remembers_the_checkpoint(server: Server, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    client = PartsLedger("http://testserver", state_path=state, transport=server.transport)
    receipt = client.submit(server.operator, org=OPERATOR, type="org.register",
                            body={"org_id": "oslo-garage", "kind": "workshop", "name": "Oslo Garage",
                                  "public_keys": [b64encode(KeyPair.generate().public_key)]})
    assert receipt.seq == 1 and receipt.tree_size == 2 and not receipt.duplicate
    saved = json.loads(state.read_text())
    assert saved["logs"][server.ledger.origin]["checkpoint"] == receipt.checkpoint
    assert saved["logs"][server.ledger.origin]["verifier_key"] == server.ledger.verifier_key
    assert saved["servers"]["http://testserver"] == server.ledger.origin
    # the private key never travelled and is not in the state file
    seed = server.operator.seed()
    assert server.bodies and not any(seed.hex().encode() in b or b64encode(seed).encode() in b
                                     for b in server.bodies)
    assert b64encode(seed) not in state.read_text()


def test_duplicate_submission_returns_the_original_receipt(server: Server) -> None:
    client = PartsLedger("http://testserver", transport=server.transport)
    entry = client.sign(server.operator, org=OPERATOR, type="org.register",
                        body={"org_id": "riyadh-motors", "kind": "workshop", "name": "Riyadh Motors",
                              "public_keys": [b64encode(KeyPair.generate().public_key)]})
    first = client.append(entry)
    _register(client, server, "another-shop")  # the log grows past the first receipt's checkpoint
    again = client.append(entry)
    assert again.duplicate and again.seq == first.seq and again.checkpoint == first.checkpoint
    assert client.checkpoint().size == 3


def test_batch_receipts_are_each_verified(server: Server) -> None:
    client = PartsLedger("http://testserver", transport=server.transport)
    entries = [client.sign(server.operator, org=OPERATOR, type="org.register",
                           body={"org_id": f"shop-{i:03d}", "kind": "workshop", "name": f"Shop {i}",
                                 "public_keys": [b64encode(KeyPair.generate().public_key)]}) for i in range(20)]
    receipts = client.append_batch(entries)
    assert [r.seq for r in receipts] == list(range(1, 21))
    assert {r.tree_size for r in receipts} == {21}


def test_server_rejections_keep_their_code(server: Server) -> None:
    client = PartsLedger("http://testserver", transport=server.transport)
    _register(client, server, "oslo-garage")
    with pytest.raises(Conflict) as conflict:
        _register(client, server, "oslo-garage")
    assert conflict.value.details["status"] == 409
    stranger = KeyPair.generate()
    with pytest.raises(SignatureError) as unknown:
        client.submit(stranger, org=OPERATOR, type="org.register",
                      body={"org_id": "x-shop", "kind": "workshop", "name": "X", "public_keys": [
                          b64encode(stranger.public_key)]})
    assert unknown.value.code == "unknown_key"
    assert client.checkpoint().size == 2


def test_records_are_checked_and_proven(server: Server) -> None:
    client = PartsLedger("http://testserver", transport=server.transport)
    for i in range(5):
        _register(client, server, f"shop-{i}")
    records = list(client.iter_records(page=2))
    assert [r.seq for r in records] == list(range(6))
    assert records[0].record.entry.type == "log.genesis"
    assert client.record(3).record.entry.body["org_id"] == "shop-2"


def test_a_pinned_key_that_differs_from_the_servers_is_refused(server: Server) -> None:
    from ledger.note import Signer

    other = Signer.generate(server.ledger.origin).verifier_key()
    client = PartsLedger("http://testserver", transport=server.transport, log_key=other)
    with pytest.raises(IntegrityError, match="not the trusted key"):
        client.checkpoint()


def test_a_changed_log_key_is_refused_after_first_use(server: Server, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    PartsLedger("http://testserver", state_path=state, transport=server.transport).checkpoint()
    data = json.loads(state.read_text())
    from ledger.note import Signer

    data["logs"][server.ledger.origin]["verifier_key"] = Signer.generate(server.ledger.origin).verifier_key()
    state.write_text(json.dumps(data))
    with pytest.raises(IntegrityError):
        PartsLedger("http://testserver", state_path=state, transport=server.transport).checkpoint()


def test_an_unreachable_server_is_one_clear_error() -> None:
    from clients.errors import ServerUnreachable

    client = PartsLedger("http://127.0.0.1:9", timeout=2)
    with pytest.raises(ServerUnreachable, match="cannot reach"):
        client.checkpoint()


def test_commission_carries_the_label_signature_the_server_prints(server: Server) -> None:
    from ledger.digital_link import parse_uri, sign_part_id, verify_part_sig
    from ledger.gs1 import make_gtin

    client = PartsLedger("http://testserver", transport=server.transport)
    oem = KeyPair.generate()
    client.submit(server.operator, org=OPERATOR, type="org.register",
                  body={"org_id": "acme-oem", "kind": "oem", "name": "Acme", "gs1_prefixes": ["950600"],
                        "public_keys": [b64encode(oem.public_key)]})
    gtin = make_gtin("950600", 42)
    receipt = client.submit(oem, org="acme-oem", type="part.commission",
                            body={"gtin": gtin, "serial": "SDKSIG1", "category": "brakes"})
    sig = client.record(receipt.seq).record.entry.body["part_sig"]
    assert sig == sign_part_id(oem, gtin, "SDKSIG1")
    verify_part_sig(oem.public_key, gtin, "SDKSIG1", sig)
    png = client.request("GET", f"/v1/parts/{gtin}/SDKSIG1/qr.png")
    image = Image.open(io.BytesIO(png.content))
    [uri] = [r.text for r in zxingcpp.read_barcodes(image, formats=QR_ONLY)]
    assert parse_uri(uri).sig == sig
    # an explicit part_sig is kept as given (a forged one is then refused by the server)
    forged = sign_part_id(KeyPair.generate(), gtin, "SDKSIG2")
    signed = client.sign(oem, org="acme-oem", type="part.commission",
                         body={"gtin": gtin, "serial": "SDKSIG2", "category": "brakes", "part_sig": forged})
    assert signed.entry.body["part_sig"] == forged
    with pytest.raises(SignatureError) as info:
        client.append(signed)
    assert info.value.code == "bad_part_sig"
    # a body the server will refuse for its GTIN is sent unchanged, to get the GTIN's own code
    bad = client.sign(oem, org="acme-oem", type="part.commission",
                      body={"gtin": "12345678901234", "serial": "X", "category": "brakes"})
    assert "part_sig" not in bad.entry.body
    # a repurposed part's new identity gets the repurposing org's label signature
    second = client.sign(oem, org="acme-oem", type="part.repurpose",
                         body={"gtin": gtin, "serial": "SDKSIG1", "new_gtin": gtin, "new_serial": "SDKSIG9"})
    assert second.entry.body["part_sig"] == sign_part_id(oem, gtin, "SDKSIG9")
