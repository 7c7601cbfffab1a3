"""A small domain world for tests: an OEM, a supplier, workshops, a recycler, parts and vehicles."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest

from ledger.errors import LedgerError
from ledger.gs1 import make_gln, make_gtin
from ledger.log import Receipt
from tests.support import Actor, World

OEM_PREFIX = "6901234"
OTHER_PREFIX = "6909999"
GTIN_BRAKE = make_gtin(OEM_PREFIX, 100)
GTIN_BATTERY = make_gtin(OEM_PREFIX, 200)
GTIN_SECOND_LIFE = make_gtin("6905555", 1)
GTIN_FOREIGN = make_gtin(OTHER_PREFIX, 1)
GLN_OSLO = make_gln("7080000", 1)
GLN_OSLO_2 = make_gln("7080000", 2)
VALID_FROM = "2020-01-01T00:00:00Z"


def vehicle(name: str) -> str:
    """A syntactically valid vehicle pseudonym (tests that need the vault use ledger.privacy)."""
    digest = hashlib.sha256(name.encode()).digest()
    return "veh-" + base64.b32encode(digest).decode().rstrip("=").lower()


@dataclass
class DomainWorld:
    world: World
    oem: Actor
    oem2: Actor
    supplier: Actor
    workshop: Actor
    independent: Actor
    recycler: Actor
    lab: Actor
    authority: Actor
    serials: dict[str, int] = field(default_factory=dict)

    @property
    def operator(self) -> Actor:
        return self.world.operator

    def append(self, actor: Actor, type: str, body: dict[str, Any]) -> Receipt:
        return self.world.append(actor, type, body)

    def reject(self, actor: Actor, type: str, body: dict[str, Any], code: str) -> LedgerError:
        size = self.world.ledger.size()
        with pytest.raises(LedgerError) as info:
            self.append(actor, type, body)
        assert info.value.code == code, info.value.message
        assert self.world.ledger.size() == size
        return info.value

    def commission(self, gtin: str = GTIN_BRAKE, serial: str | None = None, *, by: Actor | None = None,
                   category: str = "brakes", lot: str | None = "L1", **extra: Any) -> tuple[str, str]:
        if serial is None:
            self.serials[gtin] = self.serials.get(gtin, 0) + 1
            serial = f"S{self.serials[gtin]:04d}"
        body: dict[str, Any] = {"gtin": gtin, "serial": serial, "category": category, **extra}
        if lot is not None:
            body["lot"] = lot
        self.append(by or self.oem, "part.commission", body)
        return gtin, serial

    def deliver(self, part: tuple[str, str], to: Actor, by: Actor | None = None) -> None:
        gtin, serial = part
        self.append(by or self.oem, "part.ship", {"gtin": gtin, "serial": serial, "to": to.org})
        self.append(to, "part.receive", {"gtin": gtin, "serial": serial})

    def install(self, part: tuple[str, str], car: str, by: Actor | None = None, **extra: Any) -> Receipt:
        gtin, serial = part
        return self.append(by or self.workshop, "part.install",
                           {"gtin": gtin, "serial": serial, "vehicle": vehicle(car), **extra})


def build(world: World) -> DomainWorld:
    """Register the cast and give the workshop and the supplier their grants."""
    w = world
    oem = w.register("dragon-motors", "oem", country="CN", gs1_prefixes=[OEM_PREFIX])
    oem2 = w.register("other-motors", "oem", country="DE", gs1_prefixes=[OTHER_PREFIX])
    supplier = w.register("volt-cells", "supplier", country="CN", gs1_prefixes=["6907777"])
    workshop = w.register("oslo-ev", "workshop", country="NO", glns=[GLN_OSLO, GLN_OSLO_2])
    independent = w.register("indie-garage", "workshop", country="NO")
    recycler = w.register("nordic-recycling", "recycler", country="NO", gs1_prefixes=["6905555"])
    lab = w.register("test-lab", "test_lab", country="DE")
    authority = w.register("market-surveillance", "authority", country="NO")
    w.append(oem, "grant.issue", {"grant_id": "g-workshop", "kind": "workshop", "grantee": workshop.org,
                                  "activities": ["install", "remove", "repair", "inspect", "warranty_claim",
                                                 "battery_diagnosis"],
                                  "valid_from": VALID_FROM})
    w.append(oem, "grant.issue", {"grant_id": "g-supplier", "kind": "commission", "grantee": supplier.org,
                                  "gtin_prefixes": [OEM_PREFIX + "2"], "valid_from": VALID_FROM})
    return DomainWorld(w, oem, oem2, supplier, workshop, independent, recycler, lab, authority)
