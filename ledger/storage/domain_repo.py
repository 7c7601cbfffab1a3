"""The repository the domain handlers and queries use for parts, grants, recalls and claims.

Handlers never write SQL: they read and write through these methods inside
the appending transaction (the session of :class:`~ledger.storage.state.StateStore`).
The read-side query module (:mod:`ledger.queries`) uses the same methods in
read transactions, so live state, replayed state and what the API shows all
come from one place.

Rows are added without a flush and looked up through a
:class:`~ledger.storage.staging.Staging` (shared with the state store inside
an append), so a batch writes each table with one multi-row insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Result, Select, func, or_, select
from sqlmodel import Session, SQLModel, col

from ledger.storage.domain_tables import LedgerFlag
from ledger.storage.grant_tables import Grant, GrantChange
from ledger.storage.parts_tables import BatteryReport, Correction, EntryRef, Installation, Part, PartEvent, Recall
from ledger.storage.staging import Staging
from ledger.storage.warranty_tables import Claim

T = TypeVar("T", bound=SQLModel)


def _parts_listing(stmt: Select[Any], *, gtin: str | None, lot: str | None, state: str | None, org: str | None,
                  offset: int, limit: int) -> Select[Any]:
    """``stmt`` (a select from ``parts``) filtered as ``GET /v1/parts`` asks, in commissioning order, one page."""
    if gtin is not None:
        stmt = stmt.where(col(Part.gtin) == gtin)
    if lot is not None:
        stmt = stmt.where(col(Part.lot) == lot)
    if state is not None:
        stmt = stmt.where(col(Part.state) == state)
    if org is not None:
        stmt = stmt.where(or_(col(Part.custodian) == org, col(Part.brand_owner) == org,
                              col(Part.commissioned_by) == org, col(Part.installed_by) == org))
    stmt = stmt.order_by(col(Part.commissioned_seq), col(Part.gtin), col(Part.serial))
    return stmt.offset(offset).limit(limit)


class DomainRepo:
    """Reads and writes the domain projections in the caller's session."""

    def __init__(self, session: Session, staging: Staging | None = None) -> None:
        self.session = session
        self.staging = staging if staging is not None else Staging(session)

    def _execute(self, stmt: Any) -> Result[Any]:
        """Run a query after writing the staged rows (explicitly, so it sees them and so that a write
        error surfaces as itself, not as a side effect of the query)."""
        self.staging.write()
        return self.session.execute(stmt)

    # generic ------------------------------------------------------------------------------------
    def add(self, row: SQLModel) -> None:
        """Add a new row or re-add a changed one; written at the next flush (see :class:`Staging`)."""
        self.staging.add(row)

    save = add

    def insert(self, cls: type[SQLModel], **values: Any) -> None:
        """Add a new row from its field values (every field given); see :meth:`Staging.insert`."""
        self.staging.insert(cls, values)

    # parts --------------------------------------------------------------------------------------
    def get_part(self, gtin: str, serial: str) -> Part | None:
        return self.staging.get(Part, (gtin, serial))

    def list_parts(self, *, gtin: str | None = None, lot: str | None = None, state: str | None = None,
                   org: str | None = None, offset: int = 0, limit: int = 100) -> Sequence[Part]:
        return self._execute(_parts_listing(select(Part), gtin=gtin, lot=lot, state=state, org=org, offset=offset,
                                           limit=limit)).scalars().all()

    def list_part_rows(self, columns: Sequence[str], *, gtin: str | None = None, lot: str | None = None,
                       state: str | None = None, org: str | None = None, offset: int = 0,
                       limit: int = 100) -> list[tuple[Any, ...]]:
        """:meth:`list_parts` as tuples of ``columns`` (no model objects: a page of a thousand parts in a few
        milliseconds)."""
        table = Part.__table__  # type: ignore[attr-defined]
        stmt = _parts_listing(select(*(table.c[name] for name in columns)), gtin=gtin, lot=lot, state=state,
                             org=org, offset=offset, limit=limit)
        return [tuple(row) for row in self._execute(stmt)]

    def parts_of_gtin(self, gtin: str) -> Sequence[Part]:
        return self._execute(select(Part).where(col(Part.gtin) == gtin)
                                    .order_by(col(Part.commissioned_seq))).scalars().all()

    def part_events(self, gtin: str, serial: str) -> Sequence[PartEvent]:
        stmt = select(PartEvent).where(col(PartEvent.gtin) == gtin, col(PartEvent.serial) == serial)
        return self._execute(stmt.order_by(col(PartEvent.seq))).scalars().all()

    # installations ------------------------------------------------------------------------------
    def installations(self, *, gtin: str | None = None, serial: str | None = None, lot: str | None = None,
                      vehicle: str | None = None) -> Sequence[Installation]:
        stmt = select(Installation)
        if gtin is not None:
            stmt = stmt.where(col(Installation.gtin) == gtin)
        if serial is not None:
            stmt = stmt.where(col(Installation.serial) == serial)
        if lot is not None:
            stmt = stmt.where(col(Installation.lot) == lot)
        if vehicle is not None:
            stmt = stmt.where(col(Installation.vehicle) == vehicle)
        return self._execute(stmt.order_by(col(Installation.seq))).scalars().all()

    def open_installations(self, gtin: str, serial: str) -> Sequence[Installation]:
        stmt = select(Installation).where(col(Installation.gtin) == gtin, col(Installation.serial) == serial,
                                          col(Installation.removed_seq).is_(None))
        return self._execute(stmt.order_by(col(Installation.seq))).scalars().all()

    # recalls ------------------------------------------------------------------------------------
    def get_recall(self, campaign_id: str) -> Recall | None:
        return self.staging.get(Recall, campaign_id)

    def recalls(self, *, gtin: str | None = None, oem: str | None = None, open_only: bool = False,
                at_seq: int | None = None) -> Sequence[Recall]:
        stmt = select(Recall)
        if gtin is not None:
            stmt = stmt.where(col(Recall.gtin) == gtin)
        if oem is not None:
            stmt = stmt.where(col(Recall.oem) == oem)
        if at_seq is not None:
            stmt = stmt.where(col(Recall.set_seq) <= at_seq)
            if open_only:
                stmt = stmt.where(or_(col(Recall.cleared_seq).is_(None), col(Recall.cleared_seq) > at_seq))
        elif open_only:
            stmt = stmt.where(col(Recall.cleared_seq).is_(None))
        return self._execute(stmt.order_by(col(Recall.set_seq))).scalars().all()

    # batteries ----------------------------------------------------------------------------------
    def battery_reports(self, gtin: str, serial: str) -> Sequence[BatteryReport]:
        stmt = select(BatteryReport).where(col(BatteryReport.gtin) == gtin, col(BatteryReport.serial) == serial)
        return self._execute(stmt.order_by(col(BatteryReport.seq))).scalars().all()

    # grants -------------------------------------------------------------------------------------
    def get_grant(self, grant_id: str) -> Grant | None:
        return self.staging.get(Grant, grant_id)

    def list_grants(self, *, grantor: str | None = None, grantee: str | None = None, kind: str | None = None,
                    status: str | None = None, offset: int = 0, limit: int = 1000) -> Sequence[Grant]:
        stmt = select(Grant)
        if grantor is not None:
            stmt = stmt.where(col(Grant.grantor) == grantor)
        if grantee is not None:
            stmt = stmt.where(col(Grant.grantee) == grantee)
        if kind is not None:
            stmt = stmt.where(col(Grant.kind) == kind)
        if status is not None:
            stmt = stmt.where(col(Grant.status) == status)
        stmt = stmt.order_by(col(Grant.issued_seq)).offset(offset).limit(limit)
        return self._execute(stmt).scalars().all()

    def grant_status_at(self, grant_id: str, seq: int) -> str | None:
        """The grant's status just before record ``seq`` was applied (``None``: not issued yet)."""
        stmt = (select(col(GrantChange.status)).where(col(GrantChange.grant_id) == grant_id, col(GrantChange.seq) < seq)
                .order_by(col(GrantChange.seq).desc()).limit(1))
        return self._execute(stmt).scalar_one_or_none()

    def grant_changes(self, grant_id: str) -> Sequence[GrantChange]:
        stmt = select(GrantChange).where(col(GrantChange.grant_id) == grant_id).order_by(col(GrantChange.seq))
        return self._execute(stmt).scalars().all()

    # claims -------------------------------------------------------------------------------------
    def get_claim(self, claim_id: str) -> Claim | None:
        return self.staging.get(Claim, claim_id)

    def list_claims(self, *, gtin: str | None = None, serial: str | None = None, lot: str | None = None,
                    workshop: str | None = None, oem: str | None = None, status: str | None = None,
                    offset: int = 0, limit: int = 1000) -> Sequence[Claim]:
        stmt = select(Claim)
        for column, value in ((Claim.gtin, gtin), (Claim.serial, serial), (Claim.lot, lot),
                              (Claim.workshop, workshop), (Claim.oem, oem), (Claim.status, status)):
            if value is not None:
                stmt = stmt.where(col(column) == value)
        stmt = stmt.order_by(col(Claim.filed_seq)).offset(offset).limit(limit)
        return self._execute(stmt).scalars().all()

    # corrections and flags ----------------------------------------------------------------------
    def corrections_of(self, entry_id: str) -> Sequence[Correction]:
        stmt = select(Correction).where(col(Correction.corrects) == entry_id).order_by(col(Correction.seq))
        return self._execute(stmt).scalars().all()

    def open_flags(self, *, subject: str | None = None, org_id: str | None = None, offset: int = 0,
                   limit: int = 1000) -> Sequence[LedgerFlag]:
        """Flags whose raising entry has not been corrected."""
        corrected = select(col(Correction.corrects))
        stmt = select(LedgerFlag).where(col(LedgerFlag.entry_id).not_in(corrected))
        if subject is not None:
            stmt = stmt.where(col(LedgerFlag.subject) == subject)
        if org_id is not None:
            stmt = stmt.where(col(LedgerFlag.org_id) == org_id)
        stmt = stmt.order_by(col(LedgerFlag.seq), col(LedgerFlag.kind), col(LedgerFlag.subject))
        return self._execute(stmt.offset(offset).limit(limit)).scalars().all()

    def all_flags(self, *, subject: str | None = None, org_id: str | None = None, offset: int = 0,
                  limit: int = 1000) -> Sequence[LedgerFlag]:
        stmt = select(LedgerFlag)
        if subject is not None:
            stmt = stmt.where(col(LedgerFlag.subject) == subject)
        if org_id is not None:
            stmt = stmt.where(col(LedgerFlag.org_id) == org_id)
        stmt = stmt.order_by(col(LedgerFlag.seq), col(LedgerFlag.kind), col(LedgerFlag.subject))
        return self._execute(stmt.offset(offset).limit(limit)).scalars().all()

    def flags_of_entry(self, entry_id: str) -> Sequence[LedgerFlag]:
        stmt = select(LedgerFlag).where(col(LedgerFlag.entry_id) == entry_id)
        return self._execute(stmt.order_by(col(LedgerFlag.seq), col(LedgerFlag.subject))).scalars().all()

    def corrected_entry_ids(self) -> set[str]:
        return {str(x) for x in self._execute(select(col(Correction.corrects))).scalars().all()}

    # the entry index (a projection: replay has no log tables) ------------------------------
    def record_of_entry(self, entry_id: str) -> EntryRef | None:
        return self.staging.get(EntryRef, entry_id)

    def logged_at(self, seq: int) -> str | None:
        value = self._execute(select(col(EntryRef.logged)).where(col(EntryRef.seq) == seq)).scalar_one_or_none()
        return None if value is None else str(value)

    def head_seq(self) -> int:
        value = self._execute(select(func.max(col(EntryRef.seq)))).scalar_one_or_none()
        return -1 if value is None else int(value)

    def entries_by_key_since(self, kid: str, logged_from: str) -> Sequence[EntryRef]:
        """Entries signed by ``kid`` logged at or after ``logged_from``, in log order."""
        stmt = (select(EntryRef).where(col(EntryRef.kid) == kid, col(EntryRef.logged) >= logged_from)
                .order_by(col(EntryRef.seq)))
        return self._execute(stmt).scalars().all()


__all__ = ["DomainRepo"]
