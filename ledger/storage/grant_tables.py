"""Projection tables of grants (SPEC §4.2): the grant and every status change with its seq.

Status changes are kept as rows (not only the current status) so that
authorization can be judged *as of* any log position.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, String
from sqlmodel import Field, SQLModel


class Grant(SQLModel, table=True):
    __tablename__ = "grants"

    grant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))  # commission | workshop
    grantor: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    grantee: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    activities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    gtin_prefixes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    brands: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    countries: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    sites: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    technicians: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    valid_from: str = Field(sa_column=Column(String(32), nullable=False))
    valid_until: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))  # active | suspended | revoked
    issued_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    changed_seq: int = Field(sa_column=Column(BigInteger, nullable=False))


class GrantChange(SQLModel, table=True):
    __tablename__ = "grant_changes"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    grant_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


__all__ = ["Grant", "GrantChange"]
