"""Off-log tables (SPEC §4.7): the vehicle-key vault and the document store.

These are *not* projections: nothing on the log produces them, they can be
erased, and replay never compares them (see ``ledger.replay.OFF_LOG_TABLES``).
No VIN is stored anywhere: the vault is keyed by an HMAC of the VIN under a
server-wide secret kept in a file in the data directory.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, LargeBinary, String
from sqlmodel import Field, SQLModel


class VaultVehicle(SQLModel, table=True):
    __tablename__ = "vault_vehicles"

    lookup: str = Field(sa_column=Column(String(64), primary_key=True))  # hex HMAC(vault secret, VIN)
    vehicle_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # 32 random bytes
    pseudonym: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: str = Field(sa_column=Column(String(32), nullable=False))


class Document(SQLModel, table=True):
    __tablename__ = "documents"

    sha256: str = Field(sa_column=Column(String(64), primary_key=True))
    media_type: str = Field(sa_column=Column(String(100), nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: str = Field(sa_column=Column(String(32), nullable=False))


OFF_LOG_TABLE_NAMES = frozenset({"vault_vehicles", "documents"})

__all__ = ["OFF_LOG_TABLE_NAMES", "Document", "VaultVehicle"]
