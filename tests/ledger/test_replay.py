"""Replay (SPEC §4.8): random valid histories across every event type, live state == replayed state.

Hypothesis draws a few hundred steps; each step picks an event type and
targets (parts, grants, claims, recalls, keys) from what the ledger holds at
that moment, usually with the actor entitled to write it and sometimes with
a wrong one. Rejected steps append nothing; accepted and flagged ones build
a history that touches every projection. After the history, the database is
replayed from genesis into an empty one and every projection table must be
identical (:func:`ledger.replay.compare_replay`), on SQLite and — with
``PARTSLEDGER_TEST_DB`` — PostgreSQL.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ledger import queries
from ledger.domain import registered_types
from ledger.entries import format_time
from ledger.errors import LedgerError
from ledger.gs1 import make_gtin
from ledger.keys import KeyPair, b64encode, key_id
from ledger.replay import compare_replay, dump_state
from ledger.service import LedgerSettings, open_ledger
from tests.conftest import PG_URL
from tests.ledger.domain_support import GTIN_SECOND_LIFE, OEM_PREFIX, DomainWorld, build, vehicle
from tests.support import Actor, World

TYPES = sorted(set(registered_types()) - {"log.genesis"})
Step = tuple[int, int, int]
GTINS = [make_gtin(OEM_PREFIX, 100), make_gtin(OEM_PREFIX, 200), make_gtin(OEM_PREFIX + "2", 7)]
CATEGORY = {GTINS[0]: "brakes", GTINS[1]: "hv_battery", GTINS[2]: "hv_battery"}
ACTIVITIES = ["install", "remove", "repair", "inspect", "warranty_claim", "battery_diagnosis"]


class Driver:
    """Turns drawn integers into entries against the live ledger."""

    def __init__(self, d: DomainWorld) -> None:
        self.d = d
        self.db = d.world.ledger.db
        self.cast: list[Actor] = [d.oem, d.oem2, d.supplier, d.workshop, d.independent, d.recycler, d.lab,
                                  d.authority, d.operator]
        self.workshops = [d.workshop, d.independent]
        self.parts: list[tuple[str, str]] = []
        self.grants = ["g-workshop", "g-supplier"]
        self.claims: list[str] = []
        self.approved: list[str] = []  # approved and not yet paid
        self.recalls: list[str] = []
        self.entry_ids: list[str] = []
        self.spare_keys: list[tuple[Actor, str]] = []
        self.counter = 0
        self.accepted: Counter[str] = Counter()
        self.rejected = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def pick(self, items: list[Any], i: int) -> Any:
        return items[i % len(items)] if items else None

    def by_id(self, org: str | None) -> Actor | None:
        return next((a for a in self.cast if a.org == org), None)

    def try_append(self, actor: Actor, type: str, body: dict[str, Any]) -> None:
        try:
            receipt = self.d.append(actor, type, body)
        except LedgerError:
            self.rejected += 1
            return
        self.accepted[type] += 1
        self.entry_ids.append(receipt.entry_id)

    # --- one step ---------------------------------------------------------------------------------------
    def step(self, index: int, a: int, b: int, c: int) -> None:
        # Cycling through the types (shifted by the drawn ``a``) attempts every type in every history.
        type = TYPES[(index + a) % len(TYPES)]
        rogue = c % 11 == 0  # sometimes the wrong actor tries
        made = getattr(self, "do_" + type.replace(".", "_"))(b, c)
        if made is None:
            return
        actor, body = made
        if rogue:
            actor = self.pick(self.cast, b + c)
        before = self.accepted[type]
        self.try_append(actor, type, body)
        if self.accepted[type] > before:
            if type == "part.commission":
                self.parts.append((body["gtin"], body["serial"]))
            elif type == "part.repurpose":
                self.parts.append((body["new_gtin"], body["new_serial"]))
            elif type == "warranty.decide" and body["decision"] == "approve":
                self.approved.append(body["claim_id"])
            elif type == "warranty.pay" and body["claim_id"] in self.approved:
                self.approved.remove(body["claim_id"])

    def part(self, b: int) -> tuple[tuple[str, str], dict[str, Any]] | None:
        part = self.pick(self.parts, b)
        if part is None:
            return None
        return part, queries.get_part(self.db, *part)

    def ref(self, part: tuple[str, str]) -> dict[str, str]:
        return {"gtin": part[0], "serial": part[1]}

    # --- orgs and keys ----------------------------------------------------------------------------------
    def do_org_register(self, b: int, c: int) -> tuple[Actor, dict[str, Any]]:
        key = KeyPair.generate()
        org = self.fresh("ws-")
        self.cast.append(Actor(org, key))
        self.workshops.append(self.cast[-1])
        return self.d.operator, {"org_id": org, "kind": "workshop", "name": org, "country": ["NO", "SG", "MX"][c % 3],
                                 "public_keys": [b64encode(key.public_key)]}

    def do_key_add(self, b: int, c: int) -> None:
        actor = self.pick([a for a in self.cast if a.org != self.d.operator.org], b)
        new = KeyPair.generate()
        before = self.accepted["key.add"]
        self.try_append(actor, "key.add", {"org_id": actor.org, "public_key": b64encode(new.public_key)})
        if self.accepted["key.add"] == before:
            return
        if c % 2:  # the org switches to its new key; the old one becomes revocable
            self.spare_keys.append((actor, key_id(actor.key.public_key)))
            actor.key = new
        else:
            self.spare_keys.append((actor, key_id(new.public_key)))

    def do_key_revoke(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        spare = [(a, kid) for a, kid in self.spare_keys if kid != key_id(a.key.public_key)]
        if not spare:
            return None
        actor, kid = self.pick(spare, b)
        self.spare_keys.remove((actor, kid))
        body: dict[str, Any] = {"kid": kid, "reason": "rotated"}
        if c % 3 == 0:
            body["compromised_at"] = format_time(datetime.now(UTC) - timedelta(hours=1))
        return actor, body

    # --- grants -----------------------------------------------------------------------------------------
    def do_grant_issue(self, b: int, c: int) -> tuple[Actor, dict[str, Any]]:
        grant_id = self.fresh("g-")
        self.grants.append(grant_id)
        now = datetime.now(UTC)
        start = now - timedelta(days=400) if c % 4 else now + timedelta(days=30)
        body: dict[str, Any] = {"grant_id": grant_id, "kind": "workshop",
                                "grantee": self.pick(self.workshops, b).org,
                                "activities": ACTIVITIES[: 1 + c % len(ACTIVITIES)],
                                "valid_from": format_time(start)}
        if c % 5 == 1:
            body["valid_until"] = format_time(now - timedelta(days=1))
        if c % 3 == 2:
            body["countries"] = ["NO"]
        if c % 7 == 3:
            body["categories"] = ["brakes"]
        return self.d.oem, body

    def _grant_change(self, b: int) -> tuple[Actor, dict[str, Any]]:
        return self.d.oem, {"grant_id": self.pick(self.grants, b)}

    def do_grant_suspend(self, b: int, c: int) -> tuple[Actor, dict[str, Any]]:
        return self._grant_change(b)

    def do_grant_resume(self, b: int, c: int) -> tuple[Actor, dict[str, Any]]:
        return self._grant_change(b)

    def do_grant_revoke(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        return self._grant_change(b) if c % 3 == 0 else None

    # --- parts ------------------------------------------------------------------------------------------
    def do_part_commission(self, b: int, c: int) -> tuple[Actor, dict[str, Any]]:
        gtin = self.pick(GTINS, b)
        serial = self.pick(self.parts, c)[1] if c % 13 == 0 and self.parts else self.fresh("S")
        body: dict[str, Any] = {"gtin": gtin, "serial": serial, "category": CATEGORY[gtin], "lot": f"L{c % 4}"}
        if CATEGORY[gtin] == "hv_battery":
            body["battery"] = {"chemistry": "NMC", "capacity_wh": 50000 + c % 1000}
        actor = self.d.supplier if gtin == GTINS[2] and c % 2 else self.d.oem
        return actor, body

    def _holder_step(self, b: int, extra: Callable[[dict[str, Any]], dict[str, Any]]
                     ) -> tuple[Actor, dict[str, Any]] | None:
        found = self.part(b)
        if found is None:
            return None
        part, state = found
        actor = self.by_id(state["custodian"]) or self.d.oem
        return actor, {**self.ref(part), **extra(state)}

    def do_part_ship(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        holders = [self.d.oem, self.d.supplier, self.d.workshop, self.d.independent, self.d.recycler, self.d.lab]
        return self._holder_step(b, lambda s: {"to": self.pick(holders, c).org})

    def do_part_receive(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        found = self.part(b)
        if found is None:
            return None
        part, state = found
        actor = self.by_id(state["pending_to"]) or self.pick(self.workshops, c)
        return actor, self.ref(part)

    def do_part_install(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        found = self.part(b)
        if found is None:
            return None
        return self.pick(self.workshops, c), {**self.ref(found[0]), "vehicle": vehicle(f"car-{c % 12}")}

    def _service(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        found = self.part(b)
        if found is None:
            return None
        actor = self.pick([*self.workshops, self.d.oem, self.d.lab], c)
        return actor, {**self.ref(found[0]), "result": "pass" if c % 2 else "fail"}

    def do_part_inspect(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        return self._service(b, c)

    def do_part_repair(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        return self._service(b, c)

    def do_part_remove(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        found = self.part(b)
        if found is None:
            return None
        return self.pick(self.workshops, c), self.ref(found[0])

    def do_part_return(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        return self._holder_step(b, lambda s: {"to": self.d.oem.org if s["custodian"] != self.d.oem.org
                                               else self.d.supplier.org})

    def do_part_scrap(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        return self._holder_step(b, lambda s: {}) if c % 3 == 0 else None

    def do_part_collect(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        found = self.part(b)
        return None if found is None else (self.d.recycler, self.ref(found[0]))

    def do_part_recycle(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        found = self.part(b)
        if found is None:
            return None
        return self.d.recycler, {**self.ref(found[0]), "recovered": {"lithium": c % 5000, "copper": b % 9000}}

    def do_part_repurpose(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        held = [p for p in self.parts[b % max(len(self.parts), 1):] + self.parts
                if queries.get_part(self.db, *p)["custodian"] == self.d.recycler.org]
        if not held:
            return None
        return self.d.recycler, {**self.ref(held[0]), "new_gtin": GTIN_SECOND_LIFE, "new_serial": self.fresh("SL")}

    def do_battery_soh(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        found = self.part(b)
        if found is None:
            return None
        actor = self.pick([*self.workshops, self.d.lab, self.d.recycler], c)
        return actor, {**self.ref(found[0]), "soh_pct": 60 + c % 41, "cycles": b % 3000}

    # --- recalls and warranty ---------------------------------------------------------------------------
    def do_recall_set(self, b: int, c: int) -> tuple[Actor, dict[str, Any]]:
        campaign = self.fresh("RC-")
        self.recalls.append(campaign)
        body: dict[str, Any] = {"campaign_id": campaign, "gtin": self.pick(GTINS, b)}
        if c % 2:
            body["lots"] = [f"L{c % 4}"]
        elif c % 3 == 0:
            body["serial_ranges"] = [{"first": "S1", "last": "S5"}]
        return self.d.oem, body

    def do_recall_clear(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        campaign = self.pick(self.recalls, b)
        return None if campaign is None else (self.d.oem, {"campaign_id": campaign})

    def do_warranty_claim(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        found = self.part(b)
        if found is None:
            return None
        claim_id = self.fresh("C-")
        self.claims.append(claim_id)
        return self.pick(self.workshops, c), {"claim_id": claim_id, **self.ref(found[0]),
                                              "failure_code": f"F{c % 3}"}

    def do_warranty_decide(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        claim = self.pick(self.claims, b)
        if claim is None:
            return None
        decision = ["approve", "reject", "hold"][c % 3]
        body: dict[str, Any] = {"claim_id": claim, "decision": decision}
        if decision != "approve":
            body["reason_codes"] = ["no_fault_found"]
        return self.d.oem, body

    def do_warranty_pay(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        # Mostly an approved, unpaid claim (so payments happen in every history), sometimes any claim.
        claim = self.pick(self.approved if self.approved and c % 4 else self.claims, b)
        return None if claim is None else (self.d.oem, {"claim_id": claim,
                                                        "amount": {"currency": "EUR", "minor": c % 100000}})

    def do_entry_correct(self, b: int, c: int) -> tuple[Actor, dict[str, Any]] | None:
        target = self.pick(self.entry_ids, b)
        return None if target is None else (self.d.operator, {"corrects": target, "reason_code": "entered_in_error"})


def _open_world(tmp: Path, db_url_factory: Callable[[], str]) -> World:
    """A fresh ledger: PostgreSQL when configured, else SQLite on a RAM disk if there is one.

    This test is about determinism, not durability: hundreds of fsyncs per
    history would only measure the disk (the durable path is tested elsewhere).
    """
    url = db_url_factory() if PG_URL else f"sqlite:///{tmp / 'ledger.sqlite3'}"
    ledger = open_ledger(LedgerSettings(data_dir=tmp, db_url=url, origin="test.partsledger/log"))
    return World.open(ledger, tmp / "operator.key")


STEPS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6)),
                 min_size=280, max_size=360)


def test_replayed_state_equals_live_state(db_url_factory: Callable[[], str], tmp_path: Path) -> None:
    ram = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="pl-replay-", dir=ram if ram.is_dir() else tmp_path))
    made = iter(range(1000))
    covered: Counter[str] = Counter()
    sizes: list[int] = []

    # No shrinking: each example is hundreds of durable appends; a failure prints its steps as drawn.
    @settings(max_examples=3, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(steps=STEPS)
    def run(steps: list[Step]) -> None:
        world = _open_world(base / f"w{next(made)}", db_url_factory)
        driver = Driver(build(world))
        for warm_up in range(6):  # a few parts to act on, whatever was drawn
            driver.step(TYPES.index("part.commission"), 0, warm_up, warm_up)
        for index, (a, b, c) in enumerate(steps):
            driver.step(index, a, b, c)
        tables = compare_replay(world.ledger.db)
        assert {"parts", "grants", "claims", "flags", "recalls", "installations"} <= set(tables)
        covered.update(driver.accepted)
        sizes.append(world.ledger.size())
        world.ledger.db.dispose()

    try:
        run()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert min(sizes) >= 120, sizes  # every history holds well over a hundred records
    missing = set(TYPES) - set(covered)
    assert not missing, f"event types never accepted in the generated histories: {sorted(missing)}"


def test_replay_detects_a_projection_that_differs(world: World) -> None:
    """A negative control: tamper with one projection row and compare_replay names the table."""
    d = build(world)
    part = d.commission()
    d.install(part, "car-1")
    from sqlalchemy import text

    from ledger.errors import IntegrityError

    with world.ledger.db.write() as session:
        session.execute(text("UPDATE parts SET state = 'scrapped'"))
    before = dump_state(world.ledger.db)["parts"]
    assert before[0]["state"] == "scrapped"
    with pytest.raises(IntegrityError, match="table parts"):
        compare_replay(world.ledger.db)
