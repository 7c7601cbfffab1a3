"""The per-transaction staging of projection rows (ledger/storage/staging.py), on the real database.

New rows are kept out of the ORM session and written with one driver insert
per table; rows queued as plain values are turned into objects only when
looked up. Whatever path a row takes, what the transaction reads back and
what is finally stored must be exactly what the handlers wrote.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from ledger.storage.db import Database
from ledger.storage.parts_tables import EntryRef, Part
from ledger.storage.staging import Staging, new_row
from ledger.storage.state import StateStore


def _ref(entry_id: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {"entry_id": entry_id, "seq": seq, "type": "part.ship", "org_id": "org-a", "kid": "k" * 32,
            "logged": "2026-11-29T00:00:00Z", "gtin": None, "serial": None, **extra}


def _part(serial: str, **extra: Any) -> Part:
    fields: dict[str, Any] = {"gtin": "09506000134352", "serial": serial, "lot": None, "category": "brakes",
                              "brand": "b", "brand_owner": "oem", "commissioned_by": "oem", "commissioned_seq": 1,
                              "commissioned_kid": "k" * 32, "state": "commissioned", "custodian": "oem",
                              "warranty_months": 24, "attributes": {}, "last_seq": 1}
    fields.update(extra)
    return new_row(Part, **fields)


def test_rows_queued_as_values_are_objects_when_looked_up_and_their_changes_are_stored(database: Database) -> None:
    with database.write() as session:
        staging = Staging(session)
        staging.insert(EntryRef, _ref("e1", 1))
        staging.insert(EntryRef, _ref("e2", 2))
        before = staging.get(EntryRef, "e1")  # still queued: built from the values
        assert isinstance(before, EntryRef) and before.seq == 1
        before.org_id = "org-b"  # changed before it is written: the change is what gets written
        staging.add(before)
        staging.write()  # written (and attached)
        after = staging.get(EntryRef, "e2")  # queued as values when written: loaded from the database
        assert isinstance(after, EntryRef) and after.seq == 2
        after.org_id = "org-c"
        staging.add(after)
        staging.insert(EntryRef, _ref("e3", 3))  # written by the commit
    with database.read() as session:
        stored = {r.entry_id: r.org_id for r in session.execute(select(EntryRef)).scalars()}
    assert stored == {"e1": "org-b", "e2": "org-c", "e3": "org-a"}


def test_new_objects_written_mid_transaction_are_the_objects_queries_return(database: Database) -> None:
    with database.write() as session:
        state = StateStore(session)
        part = _part("S-1")
        state.repo.add(part)
        listed = state.repo.parts_of_gtin("09506000134352")  # a query: the staged row is written first
        assert listed == [part] and listed[0] is part
        part.state = "installed"  # tracked now that it is attached: an update at the commit
        state.repo.save(part)
        assert state.repo.get_part("09506000134352", "S-2") is None
        state.repo.add(_part("S-2", state="shipped"))
    with database.read() as session:
        stored = {p.serial: p.state for p in session.execute(select(Part)).scalars()}
    assert stored == {"S-1": "installed", "S-2": "shipped"}


def test_prefetch_answers_later_lookups_including_absent_rows(database: Database) -> None:
    with database.write() as session:
        Staging(session).add(_part("P-1"))
    with database.write() as session:
        staging = Staging(session)
        staging.prefetch(Part, [("09506000134352", "P-1"), ("09506000134352", "P-404")])
        statements: list[str] = []
        from sqlalchemy import event

        event.listen(session.connection(), "before_cursor_execute",
                     lambda *args: statements.append(str(args[2])))
        found = staging.get(Part, ("09506000134352", "P-1"))
        assert found is not None and found.serial == "P-1"
        assert staging.get(Part, ("09506000134352", "P-404")) is None
        assert statements == []  # both answered without a statement


def test_insert_names_missing_and_unknown_fields(database: Database) -> None:
    with database.write() as session:
        staging = Staging(session)
        values = _ref("e1", 1)
        del values["kid"]
        with pytest.raises(TypeError, match=r"missing field\(s\) \['kid'\], unknown field\(s\) \['colour'\]"):
            staging.insert(EntryRef, {**values, "colour": "red"})
