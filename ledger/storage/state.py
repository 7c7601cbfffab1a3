"""The repository the domain writes its projections through.

Event handlers never touch SQL or sessions: they call these methods. The
same store serves live appends and replay, so replayed state equals live state.

Writes are staged, not flushed one by one: see :mod:`ledger.storage.staging`.
The domain repository of a handler (:attr:`StateStore.repo`) shares the same
staging, so a row added by one handler of a batch is what the next one finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Result, select
from sqlmodel import Session, col

from ledger.storage.domain_repo import DomainRepo
from ledger.storage.domain_tables import LedgerFlag, Org, OrgKey
from ledger.storage.staging import Staging, new_row


class StateStore:
    """Reads and writes the projection tables inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.staging = Staging(session)
        self.repo = DomainRepo(session, self.staging)
        self._keys_of: dict[str, tuple[OrgKey, ...]] = {}

    def _execute(self, stmt: Any) -> Result[Any]:
        """Run a query after writing the staged rows (explicitly, so it sees them and so that a write
        error surfaces as itself, not as a side effect of the query)."""
        self.staging.write()
        return self.session.execute(stmt)

    # orgs -----------------------------------------------------------------
    def get_org(self, org_id: str) -> Org | None:
        return self.staging.get(Org, org_id)

    def add_org(self, org: Org) -> None:
        self.staging.add(org)

    def list_orgs(self, *, kind: str | None = None, offset: int = 0, limit: int = 100) -> Sequence[Org]:
        stmt = select(Org).order_by(col(Org.registered_seq))
        if kind is not None:
            stmt = stmt.where(col(Org.kind) == kind)
        return self._execute(stmt.offset(offset).limit(limit)).scalars().all()

    # keys -----------------------------------------------------------------
    def get_key(self, kid: str) -> OrgKey | None:
        return self.staging.get(OrgKey, kid)

    def add_key(self, *, kid: str, org_id: str, public_key: bytes, added_seq: int) -> None:
        """A new key of ``org_id`` (queued as values: a key added by a bulk load is rarely looked at again
        in its transaction; :meth:`get_key` still finds it)."""
        self._keys_of.pop(org_id, None)
        self.staging.insert(OrgKey, {"kid": kid, "org_id": org_id, "public_key": public_key, "added_seq": added_seq,
                                     "revoked_seq": None, "compromised_at": None})

    def keys_of(self, org_id: str) -> Sequence[OrgKey]:
        # Remembered for the transaction (every commissioning entry with a label signature asks): keys only
        # change through add_key and revoke_key, which forget the org's list.
        found = self._keys_of.get(org_id)
        if found is None:
            stmt = select(OrgKey).where(col(OrgKey.org_id) == org_id).order_by(col(OrgKey.added_seq))
            found = self._keys_of[org_id] = tuple(self._execute(stmt).scalars().all())
        return found

    def revoke_key(self, kid: str, seq: int, compromised_at: str | None) -> None:
        key = self.staging.get(OrgKey, kid)
        if key is None:
            raise KeyError(kid)
        self._keys_of.pop(key.org_id, None)
        key.revoked_seq = seq
        key.compromised_at = compromised_at
        self.staging.add(key)

    # flags ----------------------------------------------------------------
    def add_flag(self, *, seq: int, entry_id: str, kind: str, subject: str, org_id: str | None, message: str) -> None:
        self.staging.add(new_row(LedgerFlag, seq=seq, entry_id=entry_id, kind=kind, subject=subject, org_id=org_id,
                                    message=message))

    def flags(self, *, subject: str | None = None, org_id: str | None = None, kind: str | None = None,
              offset: int = 0, limit: int = 100) -> Sequence[LedgerFlag]:
        stmt = select(LedgerFlag).order_by(col(LedgerFlag.seq), col(LedgerFlag.id))
        if subject is not None:
            stmt = stmt.where(col(LedgerFlag.subject) == subject)
        if org_id is not None:
            stmt = stmt.where(col(LedgerFlag.org_id) == org_id)
        if kind is not None:
            stmt = stmt.where(col(LedgerFlag.kind) == kind)
        return self._execute(stmt.offset(offset).limit(limit)).scalars().all()


def row_dict(row: Any) -> dict[str, Any]:
    """A projection row as a plain dict (for APIs and replay comparison)."""
    return {column.name: getattr(row, column.name) for column in row.__table__.columns}
