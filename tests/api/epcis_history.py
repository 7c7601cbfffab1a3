"""A full supply-chain history through the real domain handlers: every exported entry type at least once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.gs1 import make_gln, make_gtin
from ledger.keys import KeyPair, b64encode
from tests.support import Actor, World

OEM_PREFIX = "4012345"
RECYCLER_PREFIX = "4099999"
GTIN_BRAKE = make_gtin(OEM_PREFIX, "00001")
GTIN_BATTERY = make_gtin(OEM_PREFIX, "00002")
GTIN_SECOND_LIFE = make_gtin(RECYCLER_PREFIX, "00001")
VEHICLE_1 = "veh-" + "a" * 52
VEHICLE_2 = "veh-" + "b2" * 26

ORGS: dict[str, dict[str, Any]] = {
    "oem-a": {"kind": "oem", "gs1_prefixes": [OEM_PREFIX], "glns": [make_gln(OEM_PREFIX, "00001")]},
    "supplier-b": {"kind": "supplier", "glns": [make_gln("4000001", "00001")]},
    "workshop-c": {"kind": "workshop", "country": "DE", "glns": [make_gln("4000002", "00001")]},
    "recycler-d": {"kind": "recycler", "gs1_prefixes": [RECYCLER_PREFIX], "glns": []},
}


@dataclass
class History:
    world: World
    actors: dict[str, Actor]
    keys: dict[str, KeyPair]
    parts: dict[str, tuple[str, str]] = field(default_factory=dict)
    types: list[str] = field(default_factory=list)

    start: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2))

    def do(self, org: str, type_: str, body: dict[str, Any]) -> str:
        """Append as ``org``, claiming a time one minute after the previous event's."""
        claimed = (self.start + timedelta(minutes=len(self.types))).strftime("%Y-%m-%dT%H:%M:%SZ")
        receipt = self.world.append(self.actors[org], type_, body, time=claimed)
        self.types.append(type_)
        return receipt.entry_id


def register_orgs(world: World, keys: dict[str, KeyPair] | None = None) -> tuple[dict[str, Actor], dict[str, KeyPair]]:
    """The four orgs with the given keys (fresh ones if none)."""
    keys = keys or {org: KeyPair.generate() for org in ORGS}
    actors = {}
    for org, fields in ORGS.items():
        world.append(world.operator, "org.register", {"org_id": org, "name": org.title(),
                                                      "public_keys": [b64encode(keys[org].public_key)], **fields})
        actors[org] = Actor(org, keys[org])
    return actors, keys


def build_history(world: World) -> History:
    actors, keys = register_orgs(world)
    h = History(world, actors, keys)
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    h.do("oem-a", "grant.issue", {"grant_id": "g-commission", "kind": "commission", "grantee": "supplier-b",
                                  "valid_from": since})
    h.do("oem-a", "grant.issue", {
        "grant_id": "g-workshop", "kind": "workshop", "grantee": "workshop-c", "valid_from": since,
        "activities": ["install", "remove", "repair", "inspect", "warranty_claim", "battery_diagnosis"]})
    sup, ws, oem, rec = (ORGS[o]["glns"][0] if ORGS[o]["glns"] else None
                         for o in ("supplier-b", "workshop-c", "oem-a", "recycler-d"))
    brake = {"gtin": GTIN_BRAKE, "serial": "BRK0000000000001"}
    battery = {"gtin": GTIN_BATTERY, "serial": "BAT0000000000001"}
    spare = {"gtin": GTIN_BRAKE, "serial": "BRK0000000000002"}
    h.do("supplier-b", "part.commission", {**brake, "category": "brakes", "lot": "L2026-11", "site": sup})
    h.do("supplier-b", "part.commission", {**battery, "category": "hv_battery", "lot": "B7", "warranty_months": 96})
    h.do("supplier-b", "part.commission", {**spare, "category": "brakes", "lot": "L2026-11"})
    wrong = h.do("supplier-b", "part.ship", {**brake, "to": "workshop-c", "site": sup})
    h.do("supplier-b", "entry.correct", {"corrects": wrong, "reason_code": "wrong_site"})
    h.do("workshop-c", "part.receive", {**brake, "from": "supplier-b", "site": ws})
    h.do("workshop-c", "part.install", {**brake, "vehicle": VEHICLE_1, "site": ws, "odometer_km": 120345})
    h.do("workshop-c", "part.inspect", {**brake, "result": "fail", "code": "WEAR"})
    h.do("workshop-c", "part.repair", {**brake, "result": "pass", "documents": ["ab" * 32]})
    h.do("workshop-c", "warranty.claim", {"claim_id": "WC-1", **brake, "failure_code": "E42",
                                          "vehicle": VEHICLE_1, "amount": {"currency": "EUR", "minor": 12550}})
    h.do("oem-a", "warranty.decide", {"claim_id": "WC-1", "decision": "approve"})
    h.do("oem-a", "warranty.pay", {"claim_id": "WC-1", "amount": {"currency": "EUR", "minor": 12550}})
    h.do("oem-a", "recall.set", {"campaign_id": "RC-2026-01", "gtin": GTIN_BRAKE, "lots": ["L2026-11"],
                                 "reason_code": "PAD_CRACK"})
    h.do("oem-a", "recall.clear", {"campaign_id": "RC-2026-01"})
    h.do("workshop-c", "part.remove", {**brake, "vehicle": VEHICLE_1, "site": ws})
    h.do("workshop-c", "part.return", {**brake, "to": "oem-a", "reason_code": "WARRANTY"})
    h.do("supplier-b", "part.ship", {**battery, "to": "workshop-c"})
    h.do("workshop-c", "part.receive", {**battery})
    h.do("workshop-c", "part.install", {**battery, "vehicle": VEHICLE_2})
    h.do("workshop-c", "battery.soh", {**battery, "soh_pct": 81, "cycles": 930})
    h.do("workshop-c", "part.remove", {**battery})
    h.do("recycler-d", "part.collect", {**battery, "from": "workshop-c"})
    h.do("recycler-d", "part.repurpose", {**battery, "new_gtin": GTIN_SECOND_LIFE, "new_serial": "SL00000000000001",
                                          "category": "hv_battery"})
    h.do("recycler-d", "part.collect", {**spare})
    h.do("recycler-d", "part.recycle", {**spare, "recovered": {"steel": 2100, "copper": 35}})
    h.do("recycler-d", "part.scrap", {"gtin": GTIN_SECOND_LIFE, "serial": "SL00000000000001",
                                      "reason_code": "CELL_FAULT"})
    h.do("oem-a", "grant.suspend", {"grant_id": "g-workshop", "reason": "AUDIT"})
    h.do("oem-a", "grant.resume", {"grant_id": "g-workshop"})
    h.do("oem-a", "grant.revoke", {"grant_id": "g-commission"})
    h.parts = {"brake": (brake["gtin"], brake["serial"]), "battery": (battery["gtin"], battery["serial"]),
               "spare": (spare["gtin"], spare["serial"]), "second_life": (GTIN_SECOND_LIFE, "SL00000000000001")}
    del oem, rec
    return h
