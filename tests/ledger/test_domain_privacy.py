"""Privacy (SPEC §4.7): pseudonyms from an erasable vault, erasure that leaves every proof intact,
and evidence stored off the log by hash."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from ledger import queries
from ledger.errors import InvalidInput, NotFound
from ledger.privacy import DocumentStore, VehicleVault, normalize_vin
from ledger.replay import compare_replay
from ledger.storage.db import Database
from ledger.verify import verify_database
from tests.ledger.domain_support import build
from tests.support import World

VIN = "LGXCE4CB0N0012345"


def _everything_stored(db: Database) -> bytes:
    """Every byte the database holds: the files for SQLite, every row of every table for PostgreSQL."""
    if db.is_sqlite:
        path = Path(db.url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    with db.read() as session:
        tables = [r[0] for r in session.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"))]
        dump = [str(session.execute(text(f'SELECT * FROM "{t}"')).all()) for t in tables]
    return "\n".join(dump).encode()


def test_vins_are_normalised_and_checked() -> None:
    assert normalize_vin(" lgxce4cb0n0-012345 ") == VIN
    for bad in ("LGXCE4CB0N001234", "LGXCE4CB0N001234O", "", "LGXCE4CB0N0012345X"):
        with pytest.raises(InvalidInput):
            normalize_vin(bad)


def test_erased_vin_is_unlinked_while_the_log_still_verifies(world: World, tmp_path: Path) -> None:
    d = build(world)
    db = world.ledger.db
    vault = VehicleVault.open(db, tmp_path / "vault")
    car = vault.pseudonym(VIN)
    assert car.startswith("veh-") and vault.pseudonym(VIN.lower()) == car
    assert vault.pseudonym("WVWZZZ1JZXW000001") != car
    part = d.commission()
    d.append(d.workshop, "part.install", {"gtin": part[0], "serial": part[1], "vehicle": car})
    docs = DocumentStore(db)
    report = b"%PDF-1.7 brake pad worn after 2000 km; customer says squeal"
    digest = docs.put(report, "application/pdf")
    d.append(d.workshop, "warranty.claim", {"claim_id": "C-P", "gtin": part[0], "serial": part[1],
                                            "failure_code": "BRK01", "vehicle": car, "documents": [digest]})
    assert docs.get(digest).content == report
    assert queries.get_part(db, *part)["vehicle"] == car

    row = vault._repo.find(vault._lookup(VIN))  # white-box: the secret bytes erasure must destroy
    assert row is not None
    vehicle_key = bytes(row.vehicle_key)

    unlinked = vault.erase(VIN)
    assert unlinked == car and vault.find(VIN) is None
    with pytest.raises(NotFound):
        vault.erase(VIN)
    assert vault.pseudonym(VIN) != car  # a new, unrelated identity: the old history stays unlinked
    vault.erase(VIN)
    docs.delete(digest)
    with pytest.raises(NotFound):
        docs.get(digest)

    verify_database(db, verifier_key=world.ledger.verifier_key)
    compare_replay(db)  # the vault and the document store are not part of the replayed state
    stored = _everything_stored(db)
    for form in (VIN, VIN.lower()):
        assert form.encode() not in stored
    assert b"customer says squeal" not in stored
    if db.is_sqlite:  # secure_delete + WAL checkpoint: the erased key's bytes are gone from the files
        assert vehicle_key not in stored
    assert car.encode() in stored  # the pseudonym stays on the log: it just no longer leads to a VIN


def test_only_pseudonyms_enter_entries(world: World) -> None:
    d = build(world)
    part = d.commission()
    size = world.ledger.size()
    for raw in (VIN, "veh-" + VIN.lower(), "veh-short"):
        d.reject(d.workshop, "part.install", {"gtin": part[0], "serial": part[1], "vehicle": raw}, "invalid_body")
    assert world.ledger.size() == size
