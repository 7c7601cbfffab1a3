"""Projection tables of the part lifecycle (SPEC §4.3, §4.6): parts, their events, installations, recalls.

Every row is a pure function of the log: keys are natural (GTIN + serial,
sequence numbers, client-chosen campaign ids), never autoincrement
counters, so a replay into an empty database reproduces them exactly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, Integer, String
from sqlmodel import Field, SQLModel


class Part(SQLModel, table=True):
    """One serialised part: where it is in its lifecycle and who holds it."""

    __tablename__ = "parts"

    gtin: str = Field(sa_column=Column(String(14), primary_key=True))
    serial: str = Field(sa_column=Column(String(20), primary_key=True))
    lot: str | None = Field(default=None, sa_column=Column(String(20), nullable=True, index=True))
    category: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    brand: str = Field(sa_column=Column(String(64), nullable=False))
    brand_owner: str = Field(sa_column=Column(String(64), nullable=False, index=True))  # the OEM holding the prefix
    commissioned_by: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    commissioned_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    commissioned_kid: str = Field(sa_column=Column(String(32), nullable=False))
    state: str = Field(sa_column=Column(String(16), nullable=False, index=True))
    custodian: str | None = Field(default=None, sa_column=Column(String(64), nullable=True, index=True))
    pending_to: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    vehicle: str | None = Field(default=None, sa_column=Column(String(64), nullable=True, index=True))
    installed_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    installed_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    first_installed_at: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    warranty_months: int = Field(sa_column=Column(Integer, nullable=False))
    suspect: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    predecessor: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))  # "gtin/serial"
    successor: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    soh_pct: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))


class PartEvent(SQLModel, table=True):
    """One record that concerns a part (its history), with the authorization judged at that seq."""

    __tablename__ = "part_events"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    gtin: str = Field(sa_column=Column(String(14), primary_key=True))
    serial: str = Field(sa_column=Column(String(20), primary_key=True))
    type: str = Field(sa_column=Column(String(32), nullable=False))
    org_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    logged: str = Field(sa_column=Column(String(32), nullable=False))
    state_after: str = Field(sa_column=Column(String(16), nullable=False))
    authorization: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    grant_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class Installation(SQLModel, table=True):
    """A part fitted to a vehicle (pseudonym); ``removed_seq`` set when it comes out."""

    __tablename__ = "installations"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    gtin: str = Field(sa_column=Column(String(14), nullable=False, index=True))
    serial: str = Field(sa_column=Column(String(20), nullable=False, index=True))
    lot: str | None = Field(default=None, sa_column=Column(String(20), nullable=True, index=True))
    vehicle: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    workshop: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    site: str | None = Field(default=None, sa_column=Column(String(13), nullable=True))
    logged: str = Field(sa_column=Column(String(32), nullable=False))
    authorization: str = Field(sa_column=Column(String(16), nullable=False))
    grant_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    removed_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class Recall(SQLModel, table=True):
    """A recall campaign: a GTIN and optionally lots and/or serial ranges."""

    __tablename__ = "recalls"

    campaign_id: str = Field(sa_column=Column(String(64), primary_key=True))
    oem: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    gtin: str = Field(sa_column=Column(String(14), nullable=False, index=True))
    lots: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    serial_ranges: list[list[str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reason_code: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    set_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    cleared_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class BatteryReport(SQLModel, table=True):
    """A state-of-health report on a battery."""

    __tablename__ = "battery_reports"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    gtin: str = Field(sa_column=Column(String(14), nullable=False, index=True))
    serial: str = Field(sa_column=Column(String(20), nullable=False, index=True))
    org_id: str = Field(sa_column=Column(String(64), nullable=False))
    soh_pct: int = Field(sa_column=Column(Integer, nullable=False))
    cycles: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    logged: str = Field(sa_column=Column(String(32), nullable=False))


class Correction(SQLModel, table=True):
    """An ``entry.correct`` record: which entry it corrects and why (the corrected entry is never edited)."""

    __tablename__ = "corrections"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    corrects: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    corrected_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    org_id: str = Field(sa_column=Column(String(64), nullable=False))
    reason_code: str = Field(sa_column=Column(String(64), nullable=False))


class EntryRef(SQLModel, table=True):
    """Every applied entry's id, position, author key and part (if any).

    Handlers must be a pure function of the projections — replay runs them
    into a database without the log tables — so what a later handler needs to
    know about an earlier entry (corrections, key-compromise flags, the
    log's time at a seq) is projected here.
    """

    __tablename__ = "entry_refs"

    entry_id: str = Field(sa_column=Column(String(64), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    org_id: str = Field(sa_column=Column(String(64), nullable=False))
    kid: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    logged: str = Field(sa_column=Column(String(32), nullable=False))
    gtin: str | None = Field(default=None, sa_column=Column(String(14), nullable=True))
    serial: str | None = Field(default=None, sa_column=Column(String(20), nullable=True))


__all__ = ["BatteryReport", "Correction", "EntryRef", "Installation", "Part", "PartEvent", "Recall"]
