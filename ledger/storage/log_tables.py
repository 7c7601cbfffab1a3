"""Tables of the log itself: records, stored Merkle nodes and checkpoints.

All three are append-only; database triggers (see the migrations) refuse
UPDATE and DELETE on them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, String, Table, Text
from sqlmodel import Field, SQLModel


class LogRecord(SQLModel, table=True):
    __tablename__ = "log_records"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    entry_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    prev_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    entry_type: str = Field(sa_column=Column(String(64), nullable=False))
    org_id: str = Field(sa_column=Column(String(64), nullable=False))
    logged_at: str = Field(sa_column=Column(String(32), nullable=False))
    record: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LogNode(SQLModel, table=True):
    __tablename__ = "log_nodes"

    level: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LogCheckpoint(SQLModel, table=True):
    __tablename__ = "log_checkpoints"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    created_at: str = Field(sa_column=Column(String(32), nullable=False))


APPEND_ONLY_TABLES = ("log_records", "log_nodes", "log_checkpoints")

# Core table handles, for typed queries (``RECORDS.c.seq``) outside the ORM.
RECORDS: Table = LogRecord.__table__  # type: ignore[attr-defined]
NODES: Table = LogNode.__table__  # type: ignore[attr-defined]
CHECKPOINTS: Table = LogCheckpoint.__table__  # type: ignore[attr-defined]
