"""Reads and writes of the off-log vault and document store (see :mod:`ledger.storage.vault_tables`).

Erasure deletes with SQLite's ``secure_delete`` on, so the freed pages are
overwritten with zeros, and then checkpoints and truncates the WAL so no
copy of the vehicle key survives in the database files. On PostgreSQL the
deleted tuple is unreachable at once and its bytes are reclaimed by
``VACUUM`` (see ``docs/privacy.md``).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, text
from sqlmodel import col

from ledger.storage.db import Database
from ledger.storage.vault_tables import Document, VaultVehicle


class VaultRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def find(self, lookup: str) -> VaultVehicle | None:
        with self.db.read() as session:
            return session.get(VaultVehicle, lookup)

    def get_or_create(self, lookup: str, make: Callable[[], VaultVehicle]) -> VaultVehicle:
        """The row for ``lookup``, created by ``make()`` under the write lock if it does not exist."""
        with self.db.write() as session:
            row = session.get(VaultVehicle, lookup)
            if row is None:
                row = make()
                session.add(row)
                session.flush()
            return row

    def erase(self, lookup: str) -> bool:
        """Delete the row for ``lookup`` so its bytes do not survive in the files; ``False`` if absent."""
        with self.db.write() as session:
            if self.db.is_sqlite:
                session.execute(text("PRAGMA secure_delete=ON"))
            result = session.execute(delete(VaultVehicle).where(col(VaultVehicle.lookup) == lookup))
            found = bool(getattr(result, "rowcount", 0))
        if self.db.is_sqlite:
            self._checkpoint_wal()
        return found

    def _checkpoint_wal(self) -> None:
        # Outside any transaction (a checkpoint cannot run inside one): the raw connection is in autocommit.
        raw = self.db.writer.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.close()
        finally:
            raw.close()


class DocumentRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, doc: Document) -> None:
        with self.db.write() as session:
            if session.get(Document, doc.sha256) is None:
                session.add(doc)

    def get(self, sha256: str) -> Document | None:
        with self.db.read() as session:
            return session.get(Document, sha256)

    def delete(self, sha256: str) -> bool:
        with self.db.write() as session:
            if self.db.is_sqlite:
                session.execute(text("PRAGMA secure_delete=ON"))
            result = session.execute(delete(Document).where(col(Document.sha256) == sha256))
            found = bool(getattr(result, "rowcount", 0))
        if self.db.is_sqlite:
            VaultRepo(self.db)._checkpoint_wal()
        return found


__all__ = ["DocumentRepo", "VaultRepo"]
