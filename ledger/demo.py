"""The demo world behind ``partsledger demo``: a small but realistic aftermarket on a fresh ledger.

An NEV maker from Shenzhen (GS1 company prefix 6901234) sells cars abroad.
Its battery supplier commissions HV packs under a sub-range of the maker's
prefix through a commission grant. Authorized workshops in Oslo, Riyadh and
Mexico City hold scoped grants; a Singapore workshop is registered but holds
none (it works as an independent, as right-to-repair law allows). A Nordic
recycler takes back and recycles one pack and gives another a second life
under its own prefix. Along the way: a clone installation, a recall of a
brake-pad lot, and warranty claims in every state (open, held, approved,
rejected, paid).

Vehicles appear only as pseudonyms from the vault (the demo VINs are
invented). The demo orgs' private keys are written to
``<data_dir>/demo-keys/<org>.key`` (mode 0600) so the CLI tutorials can act
as them; nothing secret is written anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.digital_link import sign_part_id
from ledger.entries import SignedEntry, format_time, make_signed_entry
from ledger.gs1 import make_gln, make_gtin, new_serial
from ledger.keys import KeyPair, b64encode, write_key_file
from ledger.log import Ledger
from ledger.privacy import VehicleVault

OEM_PREFIX = "6901234"
SUPPLIER_GRANTED_PREFIX = "69012345"
SUPPLIER_PREFIX = "6907777"
RECYCLER_PREFIX = "7090001"

GTIN_BRAKE_PADS = make_gtin(OEM_PREFIX, 1001)
GTIN_RADAR = make_gtin(OEM_PREFIX, 1002)
GTIN_HV_PACK = make_gtin(SUPPLIER_GRANTED_PREFIX, 1)
GTIN_SECOND_LIFE = make_gtin(RECYCLER_PREFIX, 1)

#: Invented VINs (ISO 3779 shape); only their pseudonyms reach the log.
DEMO_VINS = ("LDF1E4AB5R0000101", "LDF1E4AB5R0000102", "LDF1E4AB5R0000103", "LDF1E4AB5R0000104",
             "LDF1E4AB5R0000105", "LDF1E4AB5R0000106", "LDF1E4AB5R0000107")

_ORGS: tuple[tuple[str, str, str, str, list[str], list[str]], ...] = (
    # org id, kind, name, country, GS1 prefixes, GLNs
    ("dragonfly-auto", "oem", "Dragonfly Automotive Co., Ltd. (Shenzhen)", "CN", [OEM_PREFIX],
     [make_gln(OEM_PREFIX, 1)]),
    ("cathay-cells", "supplier", "Cathay Cells Battery Co. (Ningde)", "CN", [SUPPLIER_PREFIX],
     [make_gln(SUPPLIER_PREFIX, 1)]),
    ("oslo-ev-service", "workshop", "Oslo EV Service AS", "NO", [], [make_gln("7080000", 11)]),
    ("riyadh-auto-care", "workshop", "Riyadh Auto Care", "SA", [], [make_gln("6280000", 21)]),
    ("cdmx-taller-electrico", "workshop", "Taller Eléctrico CDMX", "MX", [], [make_gln("7500000", 31)]),
    ("singapore-ev-works", "workshop", "Singapore EV Works Pte Ltd", "SG", [], [make_gln("8880000", 41)]),
    ("nordic-battery-recycling", "recycler", "Nordic Battery Recycling AS", "NO", [RECYCLER_PREFIX],
     [make_gln(RECYCLER_PREFIX, 1)]),
    ("nordic-battery-lab", "test_lab", "Nordic Battery Test Lab", "NO", [], []),
    ("eu-market-surveillance", "authority", "Market surveillance authority (demo)", "NO", [], []),
)


@dataclass
class DemoWorld:
    """What the demo wrote: who is who, where the keys are, and the interesting identifiers."""

    orgs: dict[str, str]  # role → org id
    key_dir: Path
    key_files: dict[str, Path]  # org id → key file
    parts: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → (gtin, serial)
    vehicles: dict[str, str] = field(default_factory=dict)  # name → pseudonym
    claims: dict[str, str] = field(default_factory=dict)  # state → claim id
    recall: str = "DF-RC-2026-01"
    records: int = 0

    def summary(self) -> dict[str, Any]:
        return {"orgs": dict(self.orgs), "key_dir": str(self.key_dir),
                "parts": {k: f"{g}/{s}" for k, (g, s) in self.parts.items()},
                "claims": dict(self.claims), "recall": self.recall, "records": self.records}


class _Builder:
    def __init__(self, ledger: Ledger, operator_key: KeyPair, operator_org: str) -> None:
        self.ledger = ledger
        self.keys: dict[str, KeyPair] = {operator_org: operator_key}
        self.operator = operator_org
        self.pending: list[SignedEntry] = []

    def add(self, org: str, type: str, body: dict[str, Any]) -> None:
        self.pending.append(make_signed_entry(self.keys[org], origin=self.ledger.origin, type=type, org=org,
                                              body=body))

    def flush(self) -> None:
        if self.pending:
            self.ledger.append_batch(self.pending)
            self.pending = []


def _write_keys(key_dir: Path, keys: dict[str, KeyPair]) -> dict[str, Path]:
    key_dir.mkdir(parents=True, exist_ok=True)
    key_dir.chmod(0o700)
    files = {}
    for org, pair in keys.items():
        path = key_dir / f"{org}.key"
        path.unlink(missing_ok=True)  # a fresh demo ledger: keys of an older demo are worthless
        write_key_file(path, pair)
        files[org] = path
    return files


def build_demo(ledger: Ledger, operator_key: KeyPair, data_dir: Path, *,
               operator_org: str = "partsledger-operator") -> DemoWorld:
    """Write the demo world into ``ledger`` (which must hold only its genesis record)."""
    b = _Builder(ledger, operator_key, operator_org)
    now = datetime.now(UTC).replace(microsecond=0)
    since = format_time(now - timedelta(days=365))
    for org_id, kind, name, country, prefixes, org_glns in _ORGS:
        b.keys[org_id] = KeyPair.generate()
        b.add(operator_org, "org.register", {"org_id": org_id, "kind": kind, "name": name, "country": country,
                                             "gs1_prefixes": prefixes, "glns": org_glns,
                                             "public_keys": [b64encode(b.keys[org_id].public_key)]})
    oem, supplier = "dragonfly-auto", "cathay-cells"
    oslo, riyadh, cdmx, singapore = "oslo-ev-service", "riyadh-auto-care", "cdmx-taller-electrico", \
        "singapore-ev-works"
    recycler, lab = "nordic-battery-recycling", "nordic-battery-lab"
    glns = {org_id: g for org_id, _, _, _, _, g in _ORGS}

    # grants ------------------------------------------------------------------------------------------
    b.add(oem, "grant.issue", {"grant_id": "DF-SUP-CATHAY", "kind": "commission", "grantee": supplier,
                               "gtin_prefixes": [SUPPLIER_GRANTED_PREFIX], "valid_from": since})
    b.add(oem, "grant.issue", {"grant_id": "DF-WS-OSLO", "kind": "workshop", "grantee": oslo,
                               "activities": ["install", "remove", "repair", "inspect", "warranty_claim",
                                              "battery_diagnosis", "battery_dismantling"],
                               "countries": ["NO"], "sites": glns[oslo], "valid_from": since,
                               "valid_until": format_time(now + timedelta(days=730))})
    b.add(oem, "grant.issue", {"grant_id": "DF-WS-RIYADH", "kind": "workshop", "grantee": riyadh,
                               "activities": ["install", "remove", "repair", "inspect", "warranty_claim"],
                               "categories": ["brakes", "adas", "body", "suspension"], "countries": ["SA"],
                               "valid_from": since})
    b.add(oem, "grant.issue", {"grant_id": "DF-WS-CDMX", "kind": "workshop", "grantee": cdmx,
                               "activities": ["install", "remove", "repair", "warranty_claim", "battery_diagnosis"],
                               "countries": ["MX"], "technicians": ["MX-TEC-07", "MX-TEC-12"],
                               "valid_from": since, "valid_until": format_time(now + timedelta(days=365))})
    b.flush()

    # vehicles (pseudonyms only) -------------------------------------------------------------------------
    vault = VehicleVault.open(ledger.db, data_dir)
    cars = {f"car-{i + 1}": vault.pseudonym(vin) for i, vin in enumerate(DEMO_VINS)}
    world = DemoWorld(orgs={"operator": operator_org, "oem": oem, "supplier": supplier, "workshop_oslo": oslo,
                            "workshop_riyadh": riyadh, "workshop_mexico_city": cdmx,
                            "workshop_singapore_independent": singapore, "recycler": recycler,
                            "test_lab": lab, "authority": "eu-market-surveillance"},
                      key_dir=data_dir / "demo-keys", key_files={}, vehicles=cars)

    # commissioning ----------------------------------------------------------------------------------------
    def commission(name: str, org: str, gtin: str, category: str, lot: str, **extra: Any) -> tuple[str, str]:
        part = (gtin, new_serial())
        b.add(org, "part.commission", {"gtin": gtin, "serial": part[1], "category": category, "lot": lot,
                                       "brand": "Dragonfly", "part_sig": sign_part_id(b.keys[org], *part),
                                       **extra})
        world.parts[name] = part
        return part

    pack = {"chemistry": "LFP", "capacity_wh": 75000, "mass_g": 465000, "voltage_mv": 400000,
            "carbon_footprint_g": 6100000, "recycled_content_permille": 120, "cycle_life": 4000}
    pads = [commission(f"brake_pads_{i}", oem, GTIN_BRAKE_PADS, "brakes", "BP2406" if i < 4 else "BP2407",
                       model="DF-BP-F1", warranty_months=24) for i in range(7)]
    radar = commission("adas_radar", oem, GTIN_RADAR, "adas", "RD2405", model="DF-RAD-77", warranty_months=36)
    packs = [commission(f"hv_pack_{i}", supplier, GTIN_HV_PACK, "hv_battery", "HV2403", battery=pack,
                        warranty_months=96) for i in range(3)]
    b.flush()

    def ref(part: tuple[str, str]) -> dict[str, str]:
        return {"gtin": part[0], "serial": part[1]}

    def deliver(part: tuple[str, str], src: str, dst: str) -> None:
        b.add(src, "part.ship", {**ref(part), "to": dst})
        b.add(dst, "part.receive", {**ref(part), "from": src})

    # custody to the workshops --------------------------------------------------------------------------
    for part, shop in ((pads[0], oslo), (pads[1], riyadh), (pads[2], riyadh), (pads[3], cdmx), (pads[4], oslo),
                       (pads[5], cdmx), (radar, riyadh)):
        deliver(part, oem, shop)
    for part in packs:
        deliver(part, supplier, oem)
        deliver(part, oem, oslo)
    b.flush()

    # installations ------------------------------------------------------------------------------------------
    def install(part: tuple[str, str], shop: str, car: str, **extra: Any) -> None:
        b.add(shop, "part.install", {**ref(part), "vehicle": cars[car], **extra})

    install(pads[0], oslo, "car-1", site=glns[oslo][0])
    install(pads[1], riyadh, "car-2")
    install(pads[2], riyadh, "car-3")
    install(pads[3], cdmx, "car-4", technician="MX-TEC-07")
    install(radar, riyadh, "car-2")
    install(packs[0], oslo, "car-5", site=glns[oslo][0])
    install(packs[1], oslo, "car-6", site=glns[oslo][0])
    install(pads[6], singapore, "car-7")  # independent: recorded and flagged, never blocked
    install(pads[0], singapore, "car-7")  # the Oslo serial again, in another car: clone suspected
    b.flush()

    # service, recall ------------------------------------------------------------------------------------------
    for soh, cycles in ((98, 120), (94, 610)):
        b.add(oslo, "battery.soh", {**ref(packs[0]), "soh_pct": soh, "cycles": cycles})
    b.add(lab, "battery.soh", {**ref(packs[1]), "soh_pct": 71, "cycles": 2900})
    b.add(singapore, "part.repair", {**ref(pads[6]), "result": "pass", "code": "PAD_RESEAT"})
    b.add(oem, "recall.set", {"campaign_id": world.recall, "gtin": GTIN_BRAKE_PADS, "lots": ["BP2406"],
                              "reason_code": "pad_delamination"})
    b.flush()

    # warranty: one claim in each state --------------------------------------------------------------------------
    def claim(claim_id: str, shop: str, part: tuple[str, str], code: str, car: str | None) -> None:
        body: dict[str, Any] = {"claim_id": claim_id, **ref(part), "failure_code": code,
                                "amount": {"currency": "EUR", "minor": 48000}}
        if car is not None:
            body["vehicle"] = cars[car]
        b.add(shop, "warranty.claim", body)

    claim("DF-WC-0001", riyadh, radar, "RAD_MISALIGN", "car-2")  # stays open
    claim("DF-WC-0002", oslo, packs[2], "HV_CELL_IMBALANCE", None)  # never installed: held with reasons
    claim("DF-WC-0003", cdmx, pads[5], "BRK_NOISE", None)  # held, then rejected
    claim("DF-WC-0004", oslo, packs[0], "HV_BMS_FAULT", "car-5")  # approved
    claim("DF-WC-0005", oslo, packs[1], "HV_CAPACITY_LOSS", "car-6")  # approved and paid
    b.add(oem, "warranty.decide", {"claim_id": "DF-WC-0003", "decision": "reject",
                                   "reason_codes": ["not_installed_by_claimant", "no_fault_found"]})
    b.add(oem, "warranty.decide", {"claim_id": "DF-WC-0004", "decision": "approve"})
    b.add(oem, "warranty.decide", {"claim_id": "DF-WC-0005", "decision": "approve"})
    b.add(oem, "warranty.pay", {"claim_id": "DF-WC-0005", "amount": {"currency": "EUR", "minor": 48000},
                                "reference": "DF-PAY-2026-118"})
    world.claims = {"open": "DF-WC-0001", "held": "DF-WC-0002", "rejected": "DF-WC-0003",
                    "approved": "DF-WC-0004", "paid": "DF-WC-0005"}
    b.flush()

    # end of life: take-back, recycling, second life -------------------------------------------------------------
    b.add(oslo, "part.remove", {**ref(packs[1]), "vehicle": cars["car-6"], "reason_code": "capacity_loss"})
    b.add(recycler, "part.collect", {**ref(packs[1]), "from": oslo})
    b.add(recycler, "part.recycle", {**ref(packs[1]), "recovered": {"lithium": 5400, "iron": 38000,
                                                                    "phosphorus": 21000, "copper": 31000,
                                                                    "aluminium": 52000}})
    b.add(oslo, "part.ship", {**ref(packs[2]), "to": recycler})
    b.add(recycler, "part.receive", {**ref(packs[2]), "from": oslo})
    second_life = (GTIN_SECOND_LIFE, new_serial())
    b.add(recycler, "part.repurpose", {**ref(packs[2]), "new_gtin": second_life[0], "new_serial": second_life[1],
                                       "category": "hv_battery", "lot": "SL2611", "warranty_months": 60,
                                       "part_sig": sign_part_id(b.keys[recycler], *second_life)})
    world.parts["second_life_pack"] = second_life
    b.flush()

    world.key_files = _write_keys(world.key_dir, {k: v for k, v in b.keys.items() if k != operator_org})
    world.records = ledger.size()
    return world


__all__ = ["DEMO_VINS", "DemoWorld", "build_demo"]
