"""Replay (SPEC §4.8): the state is a pure function of the log.

:func:`replay_into` applies every record, in order, through the same event
handlers the live append uses, into an empty database. :func:`compare_replay`
does that into a scratch SQLite file and compares every projection table row
for row with the source database.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select
from sqlmodel import SQLModel

import ledger.storage.domain_tables  # noqa: F401  (registers projection tables)
from ledger.domain import Context, get_handler
from ledger.entries import parse_record
from ledger.errors import IntegrityError
from ledger.storage.db import Database
from ledger.storage.log_tables import RECORDS
from ledger.storage.state import StateStore

CHUNK = 5000


def projection_tables() -> list[Table]:
    return [t for t in SQLModel.metadata.sorted_tables if not t.name.startswith("log_")]


def _records(db: Database) -> Iterable[bytes]:
    with db.read() as session:
        result = session.execute(select(RECORDS.c.record).order_by(RECORDS.c.seq))
        while True:
            rows = result.fetchmany(CHUNK)
            if not rows:
                return
            for row in rows:
                yield bytes(row[0])


def replay_into(source: Database, target: Database) -> int:
    """Apply every record of ``source`` to the (empty, migrated) ``target``; return the count."""
    count = 0
    batch: list[bytes] = []

    def flush() -> None:
        with target.write() as session:
            state = StateStore(session)
            for raw in batch:
                record = parse_record(raw)
                ctx = Context(state=state, entry=record.entry, seq=record.seq, logged=record.logged)
                try:
                    get_handler(record.entry.type)(ctx)
                except Exception as exc:
                    raise IntegrityError(f"record {record.seq}: replay rejects it ({exc})", seq=record.seq) from None
        batch.clear()

    for raw in _records(source):
        batch.append(raw)
        count += 1
        if len(batch) >= CHUNK:
            flush()
    if batch:
        flush()
    return count


def dump_state(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every projection table as sorted rows (for comparisons and tests)."""
    out: dict[str, list[dict[str, Any]]] = {}
    with db.read() as session:
        for table in projection_tables():
            order = list(table.primary_key.columns) or list(table.columns)
            rows = session.execute(select(table).order_by(*order)).mappings().all()
            out[table.name] = [dict(r) for r in rows]
    return out


def compare_replay(source: Database) -> list[str]:
    """Replay ``source`` into a scratch database and compare; return the tables compared."""
    with tempfile.TemporaryDirectory(prefix="partsledger-replay-") as tmp:
        target = Database(f"sqlite:///{Path(tmp) / 'replay.sqlite3'}")
        try:
            target.migrate()
            replay_into(source, target)
            live = dump_state(source)
            replayed = dump_state(target)
        finally:
            target.dispose()
    for name in live:
        if live[name] != replayed.get(name):
            a, b = live[name], replayed.get(name) or []
            for index, (x, y) in enumerate(zip(a, b, strict=False)):
                if x != y:
                    raise IntegrityError(f"replay differs from stored state in table {name}, row {index}: "
                                         f"stored {x} vs replayed {y}")
            raise IntegrityError(f"replay differs from stored state in table {name}: "
                                 f"{len(a)} stored rows vs {len(b)} replayed")
    return sorted(live)


__all__ = ["compare_replay", "dump_state", "projection_tables", "replay_into"]
