"""Projection tables: state derived from the log (SPEC §4.8).

Every row here is a pure function of the records; replaying the log from
genesis into an empty database reproduces these tables exactly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Integer, LargeBinary, String, Text
from sqlmodel import Field, SQLModel


class Org(SQLModel, table=True):
    __tablename__ = "orgs"

    org_id: str = Field(sa_column=Column(String(64), primary_key=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False, index=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    country: str | None = Field(default=None, sa_column=Column(String(2), nullable=True))
    gs1_prefixes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    glns: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    registered_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    registered_by: str = Field(sa_column=Column(String(64), nullable=False))


class OrgKey(SQLModel, table=True):
    __tablename__ = "org_keys"

    kid: str = Field(sa_column=Column(String(32), primary_key=True))
    org_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    added_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    revoked_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    compromised_at: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))


class LedgerFlag(SQLModel, table=True):
    __tablename__ = "flags"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    entry_id: str = Field(sa_column=Column(String(64), nullable=False))
    kind: str = Field(sa_column=Column(String(48), nullable=False, index=True))
    subject: str = Field(sa_column=Column(String(200), nullable=False, index=True))
    org_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True, index=True))
    message: str = Field(sa_column=Column(Text, nullable=False))
