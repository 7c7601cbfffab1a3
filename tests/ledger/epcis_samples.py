"""Sample entries of every exported type, for the EPCIS mapping tests (no ledger needed)."""

from __future__ import annotations

from typing import Any

from ledger.entries import make_signed_entry
from ledger.epcis import vocab
from ledger.keys import KeyPair

ORIGIN = "test.partsledger/log"
GTIN = "04012345000016"
SERIAL = "A1B2C3D4E5F6G7H8"
ORGS = {"oem-a": ["4012345000009"], "supplier-b": ["4000001000005"], "workshop-c": ["4012345000023"],
        "recycler-d": []}
KEYS = {org: KeyPair.from_seed(bytes([i + 1]) * 32) for i, org in enumerate(ORGS)}

BODIES: list[tuple[str, str, dict[str, Any]]] = [
    ("oem-a", "grant.issue", {"grant_id": "g-1", "kind": "workshop", "grantee": "workshop-c",
                              "valid_from": "2026-01-01T00:00:00Z", "activities": ["install", "repair"],
                              "sites": ["4012345000023"]}),
    ("oem-a", "grant.suspend", {"grant_id": "g-1", "reason": "AUDIT"}),
    ("oem-a", "grant.resume", {"grant_id": "g-1"}),
    ("supplier-b", "part.commission", {"gtin": GTIN, "serial": SERIAL, "lot": "L2026-11", "site": "4000001000005"}),
    ("supplier-b", "part.ship", {"gtin": GTIN, "serial": SERIAL, "to": "workshop-c"}),
    ("workshop-c", "part.receive", {"gtin": GTIN, "serial": SERIAL, "from": "supplier-b"}),
    ("workshop-c", "part.install", {"gtin": GTIN, "serial": SERIAL, "vehicle": "vp-7f3a9c", "odometer_km": 120345,
                                    "site": "4012345000023"}),
    ("workshop-c", "part.inspect", {"gtin": GTIN, "serial": SERIAL, "result": "fail", "codes": ["P0A80"]}),
    ("workshop-c", "part.repair", {"gtin": GTIN, "serial": SERIAL, "result": "pass"}),
    ("workshop-c", "battery.soh", {"gtin": GTIN, "serial": SERIAL, "soh_pct": 87}),
    ("workshop-c", "warranty.claim", {"gtin": GTIN, "serial": SERIAL, "claim_id": "WC-1", "failure_code": "E42",
                                      "evidence": [{"sha256": "ab" * 32, "media_type": "image/jpeg"}]}),
    ("oem-a", "warranty.decide", {"claim_id": "WC-1", "decision": "approve", "reason_codes": []}),
    ("oem-a", "warranty.pay", {"claim_id": "WC-1", "amount": {"currency": "EUR", "minor_units": 12550}}),
    ("oem-a", "recall.set", {"campaign": "RC-2026-01", "gtin": GTIN, "lots": ["L2026-11", "L2026-12"]}),
    ("oem-a", "recall.clear", {"campaign": "RC-2026-01", "gtin": GTIN}),
    ("workshop-c", "part.remove", {"gtin": GTIN, "serial": SERIAL, "vehicle": "vp-7f3a9c"}),
    ("workshop-c", "part.return", {"gtin": GTIN, "serial": SERIAL, "to": "oem-a"}),
    ("recycler-d", "part.collect", {"gtin": GTIN, "serial": SERIAL, "from": "workshop-c"}),
    ("recycler-d", "part.repurpose", {"gtin": GTIN, "serial": SERIAL, "new_gtin": "04012345000023",
                                      "new_serial": "ZX9Y8W7V6U5T4S3R"}),
    ("recycler-d", "part.recycle", {"gtin": "04012345000023", "serial": "ZX9Y8W7V6U5T4S3R",
                                    "materials": {"lithium_g": 812, "cobalt_g": 230}}),
    ("workshop-c", "part.scrap", {"gtin": GTIN, "serial": "OTHER0000000001"}),
    ("oem-a", "grant.revoke", {"grant_id": "g-1"}),
]


def directory() -> vocab.Directory:
    return vocab.Directory.from_orgs(ORGS)


def sample_entries() -> list[tuple[dict[str, Any], str]]:
    """``(entry, signature)`` for each body above, at distinct times."""
    out = []
    for i, (org, type_, body) in enumerate(BODIES):
        signed = make_signed_entry(KEYS[org], origin=ORIGIN, type=type_, org=org, body=body,
                                   time=f"2026-11-2{i // 10}T1{i % 10}:00:00Z", nonce=f"sample-nonce-{i:04d}")
        out.append((signed.entry.data, signed.to_json()["sig"]))
    return out
