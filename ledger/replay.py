"""Replay (SPEC §4.8): the state is a pure function of the log.

:func:`replay_into` applies every record, in order, through the same event
handlers the live append uses, into an empty database. :func:`compare_replay`
does that into a scratch SQLite file and compares every projection table row
for row with the source database.

Two things are not compared: tables that live *off* the log
(:data:`OFF_LOG_TABLES`: the erasable vehicle vault and the document store —
nothing on the log produces them), and surrogate counters
(:data:`SURROGATE_COLUMNS`: the autoincrement id of ``flags``, whose
PostgreSQL sequence skips values when a rejected append rolls back); rows
are compared on every other column.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select
from sqlmodel import SQLModel

# These imports register the projection tables with the metadata.
import ledger.storage.domain_tables
import ledger.storage.grant_tables
import ledger.storage.parts_tables
import ledger.storage.warranty_tables  # noqa: F401
from ledger.domain import Context, get_handler
from ledger.entries import parse_record
from ledger.errors import IntegrityError
from ledger.storage.db import Database
from ledger.storage.log_tables import RECORDS
from ledger.storage.state import StateStore
from ledger.storage.vault_tables import OFF_LOG_TABLE_NAMES

#: Tables that are not a function of the log and are never compared by replay.
OFF_LOG_TABLES: frozenset[str] = OFF_LOG_TABLE_NAMES
#: Columns that are storage counters rather than facts (ignored when comparing).
SURROGATE_COLUMNS: dict[str, frozenset[str]] = {"flags": frozenset({"id"})}

CHUNK = 5000


def projection_tables() -> list[Table]:
    return [t for t in SQLModel.metadata.sorted_tables
            if not t.name.startswith("log_") and t.name not in OFF_LOG_TABLES]


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
            skip = SURROGATE_COLUMNS.get(table.name, frozenset())
            columns = [c for c in table.columns if c.name not in skip]
            rows = [dict(r) for r in session.execute(select(*columns)).mappings().all()]
            # Sorted here, not by ORDER BY: PostgreSQL and SQLite collate text differently.
            rows.sort(key=lambda r: json.dumps(r, sort_keys=True, default=repr))
            out[table.name] = rows
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


__all__ = ["OFF_LOG_TABLES", "SURROGATE_COLUMNS", "compare_replay", "dump_state", "projection_tables", "replay_into"]
