"""Projection table of warranty claims (SPEC §4.5) with their machine-computed findings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, String
from sqlmodel import Field, SQLModel


class Claim(SQLModel, table=True):
    __tablename__ = "claims"

    claim_id: str = Field(sa_column=Column(String(64), primary_key=True))
    gtin: str = Field(sa_column=Column(String(14), nullable=False, index=True))
    serial: str = Field(sa_column=Column(String(20), nullable=False, index=True))
    lot: str | None = Field(default=None, sa_column=Column(String(20), nullable=True, index=True))
    workshop: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    oem: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    vehicle: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    failure_code: str = Field(sa_column=Column(String(32), nullable=False))
    documents: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    amount: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    findings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    held_reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False, index=True))  # open|held|approved|rejected|paid
    reason_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    filed_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    decided_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    paid_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    paid: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


__all__ = ["Claim"]
