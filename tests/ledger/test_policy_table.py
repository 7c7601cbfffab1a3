"""The rule table in docs/policy.md, checked cell by cell against the code.

Every row is an event type, every column an actor kind (``workshop`` holds a
grant from the brand owner, ``independent`` is a registered workshop with
none). Each cell says what happens when an org of that kind writes that
event in an otherwise ordinary situation (it holds the part when custody
matters, the part exists, the ids are fresh): ``allowed``, ``rejected:
<error code>`` (nothing appended) or ``flagged: <flag kind>`` (appended and
flagged). The test builds a small world per row, prepares each actor, makes
the attempt and compares the outcome with the cell.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.domain import registered_types
from ledger.errors import LedgerError
from ledger.gs1 import make_gtin
from ledger.keys import KeyPair, b64encode, key_id
from tests.ledger.domain_support import OEM_PREFIX, VALID_FROM, DomainWorld, build, vehicle
from tests.support import Actor, World

POLICY_DOC = Path(__file__).resolve().parents[2] / "docs" / "policy.md"
COLUMNS = ("operator", "oem", "supplier", "workshop", "independent", "recycler", "test_lab", "authority")
GTIN_GRANTED = make_gtin(OEM_PREFIX + "2", 5)  # under the supplier's commission grant (and the OEM's prefix)


def read_table(text: str) -> dict[str, dict[str, str]]:
    """Parse the table between the policy-table markers into {event type: {actor: cell}}."""
    block = text.split("<!-- policy-table:start -->")[1].split("<!-- policy-table:end -->")[0]
    rows = [line.strip() for line in block.strip().splitlines() if line.strip().startswith("|")]
    header = [c.strip().strip("`") for c in rows[0].strip("|").split("|")]
    assert header[1:] == list(COLUMNS), header
    table: dict[str, dict[str, str]] = {}
    for line in rows[2:]:
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        table[cells[0]] = dict(zip(COLUMNS, cells[1:], strict=True))
    return table


# --- the situations -------------------------------------------------------------------------------------------
class Cell:
    def __init__(self, d: DomainWorld, column: str) -> None:
        self.d = d
        self.column = column
        self.actor: Actor = {
            "operator": d.operator, "oem": d.oem, "supplier": d.supplier, "workshop": d.workshop,
            "independent": d.independent, "recycler": d.recycler, "test_lab": d.lab, "authority": d.authority,
        }[column]
        self.tag = column.replace("_", "-")

    def quietly(self, fn: Callable[[], Any]) -> None:
        """Preparation that may be impossible for this actor (then the attempt shows why)."""
        with contextlib.suppress(LedgerError):
            fn()

    def fresh_part(self, category: str = "brakes", gtin: str | None = None) -> tuple[str, str]:
        return self.d.commission(gtin or make_gtin(OEM_PREFIX, 100 if category == "brakes" else 200),
                                 f"P-{self.tag}", category=category)

    def held_part(self) -> tuple[str, str]:
        part = self.fresh_part()
        if self.actor is not self.d.oem:
            self.quietly(lambda: self.d.deliver(part, self.actor))
        return part

    def installed_part(self, category: str = "brakes") -> tuple[str, str]:
        part = self.fresh_part(category)
        self.d.install(part, f"car-{self.tag}")
        return part


def _ref(part: tuple[str, str]) -> dict[str, str]:
    return {"gtin": part[0], "serial": part[1]}


def _key_add(c: Cell) -> dict[str, Any]:
    return {"org_id": c.actor.org, "public_key": b64encode(KeyPair.generate().public_key)}


def _key_revoke(c: Cell) -> dict[str, Any]:
    extra = KeyPair.generate()
    c.d.append(c.actor, "key.add", {"org_id": c.actor.org, "public_key": b64encode(extra.public_key)})
    return {"kid": key_id(extra.public_key)}


def _grant_resume(c: Cell) -> dict[str, Any]:
    c.quietly(lambda: c.d.append(c.d.oem, "grant.suspend", {"grant_id": "g-workshop"}))
    return {"grant_id": "g-workshop"}


def _return(c: Cell) -> dict[str, Any]:
    to = c.d.supplier.org if c.actor is c.d.oem else c.d.oem.org
    return {**_ref(c.held_part()), "to": to}


def _recycle(c: Cell) -> dict[str, Any]:
    part = c.fresh_part()
    c.d.append(c.d.recycler, "part.collect", _ref(part))
    return {**_ref(part), "recovered": {"steel": 1200}}


def _receive(c: Cell) -> dict[str, Any]:
    part = c.fresh_part()
    c.quietly(lambda: c.d.append(c.d.oem, "part.ship", {**_ref(part), "to": c.actor.org}))
    return _ref(part)


def _repurpose(c: Cell) -> dict[str, Any]:
    part = c.held_part()
    own = {"oem": OEM_PREFIX, "supplier": "6907777", "recycler": "6905555"}.get(c.column, "6905555")
    return {**_ref(part), "new_gtin": make_gtin(own, 77), "new_serial": f"NEW-{c.tag}"}


def _recall_clear(c: Cell) -> dict[str, Any]:
    c.quietly(lambda: c.d.append(c.d.oem, "recall.set", {"campaign_id": f"RC-{c.tag}",
                                                          "gtin": make_gtin(OEM_PREFIX, 100)}))
    return {"campaign_id": f"RC-{c.tag}"}


def _claim(c: Cell) -> str:
    part = c.installed_part()
    c.d.append(c.d.workshop, "warranty.claim", {"claim_id": f"C-{c.tag}", **_ref(part), "failure_code": "F1"})
    return f"C-{c.tag}"


def _pay(c: Cell) -> dict[str, Any]:
    claim_id = _claim(c)
    c.d.append(c.d.oem, "warranty.decide", {"claim_id": claim_id, "decision": "approve"})
    return {"claim_id": claim_id, "amount": {"currency": "EUR", "minor": 1000}}


def _correct(c: Cell) -> dict[str, Any]:
    receipt = c.d.append(c.actor, "key.add", {"org_id": c.actor.org,
                                              "public_key": b64encode(KeyPair.generate().public_key)})
    return {"corrects": receipt.entry_id, "reason_code": "entered_in_error"}


ATTEMPTS: dict[str, Callable[[Cell], dict[str, Any]]] = {
    "org.register": lambda c: {"org_id": f"new-{c.tag}", "kind": "workshop", "name": "New",
                               "public_keys": [b64encode(KeyPair.generate().public_key)]},
    "key.add": _key_add,
    "key.revoke": _key_revoke,
    "grant.issue": lambda c: {"grant_id": f"g-{c.tag}", "kind": "workshop", "grantee": c.d.independent.org,
                              "activities": ["install"], "valid_from": VALID_FROM},
    "grant.suspend": lambda c: {"grant_id": "g-workshop"},
    "grant.resume": _grant_resume,
    "grant.revoke": lambda c: {"grant_id": "g-workshop"},
    "part.commission": lambda c: {"gtin": GTIN_GRANTED, "serial": f"N-{c.tag}", "category": "brakes"},
    "part.ship": lambda c: {**_ref(c.held_part()), "to": c.d.recycler.org if c.actor is not c.d.recycler
                            else c.d.oem.org},
    "part.receive": _receive,
    "part.install": lambda c: {**_ref(c.fresh_part()), "vehicle": vehicle(f"car-{c.tag}")},
    "part.inspect": lambda c: {**_ref(c.installed_part()), "result": "pass"},
    "part.repair": lambda c: {**_ref(c.installed_part()), "result": "pass"},
    "part.remove": lambda c: _ref(c.installed_part()),
    "part.return": _return,
    "part.scrap": lambda c: _ref(c.held_part()),
    "part.collect": lambda c: _ref(c.fresh_part()),
    "part.recycle": _recycle,
    "part.repurpose": _repurpose,
    "battery.soh": lambda c: {**_ref(c.installed_part("hv_battery")), "soh_pct": 93},
    "recall.set": lambda c: {"campaign_id": f"RC-{c.tag}", "gtin": make_gtin(OEM_PREFIX, 100)},
    "recall.clear": _recall_clear,
    "warranty.claim": lambda c: {"claim_id": f"C-{c.tag}", **_ref(c.installed_part()), "failure_code": "F2"},
    "warranty.decide": lambda c: {"claim_id": _claim(c), "decision": "approve"},
    "warranty.pay": _pay,
    "entry.correct": _correct,
}


def outcome(d: DomainWorld, event: str, column: str) -> str:
    cell = Cell(d, column)
    body = ATTEMPTS[event](cell)
    size = d.world.ledger.size()
    try:
        receipt = d.append(cell.actor, event, body)
    except LedgerError as exc:
        assert d.world.ledger.size() == size, "a rejected entry must append nothing"
        return f"rejected: {exc.code}"
    assert d.world.ledger.size() == size + 1
    kinds = sorted({f.kind for f in receipt.flags})
    return f"flagged: {', '.join(kinds)}" if kinds else "allowed"


def compute_row(world: World, event: str) -> dict[str, str]:
    d = build(world)
    return {column: outcome(d, event, column) for column in COLUMNS}


TABLE = read_table(POLICY_DOC.read_text(encoding="utf-8"))


def test_table_covers_every_event_type_but_genesis() -> None:
    assert set(TABLE) == set(registered_types()) - {"log.genesis"}
    assert set(ATTEMPTS) == set(TABLE)
    for row in TABLE.values():
        for cell in row.values():
            assert re.match(r"^(allowed|rejected: [a-z_]+|flagged: [a-z_]+(, [a-z_]+)*)$", cell), cell


@pytest.mark.parametrize("event", sorted(TABLE))
def test_policy_row(world: World, event: str) -> None:
    assert compute_row(world, event) == TABLE[event]


def test_conditional_rules_name_real_tests_that_show_them() -> None:
    text = POLICY_DOC.read_text(encoding="utf-8")
    block = text.split("<!-- policy-rules:start -->")[1].split("<!-- policy-rules:end -->")[0]
    rows = [line.strip().strip("|").split("|") for line in block.strip().splitlines()[2:]]
    scenarios = (Path(__file__).parent / "test_domain_scenarios.py").read_text(encoding="utf-8")
    functions = dict(re.findall(r"\ndef (test_\w+)\(.*?\n(.*?)(?=\ndef |\Z)", scenarios, flags=re.S))
    assert len(rows) >= 30
    for rule, outcome_cell, test_name in ([c.strip() for c in row] for row in rows):
        assert re.match(r"^(rejected|flagged): [a-z_]+$", outcome_cell), rule
        assert test_name in functions, f"{rule}: no test {test_name}"
        assert outcome_cell.split(": ")[1] in functions[test_name], f"{rule}: {test_name} does not show it"
