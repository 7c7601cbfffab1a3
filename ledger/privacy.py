"""Privacy (SPEC §4.7): vehicle pseudonyms from an erasable vault, and an off-log document store.

No VIN and no personal data ever enters a signed entry. A vehicle is named
on the log only by its pseudonym::

    pseudonym = "veh-" + base32(HMAC-SHA256(vehicle_key, normalised VIN)), lower case, no padding

where ``vehicle_key`` is 32 random bytes made for that vehicle and kept in
the vault (an off-log table). The vault row is found by
``HMAC-SHA256(vault_secret, VIN)`` — the vault secret is a file in the data
directory (mode 0600), never in the database — so the database alone does
not reveal which VIN a row belongs to, and the VIN itself is stored nowhere.

Erasure deletes the vault row: the pseudonym can never again be computed
from the VIN (the key is gone and was random), so the vehicle's history is
unlinked for good, while every entry, record, proof and checkpoint is
untouched and still verifies.

Documents (photos, reports, free text) go to a content-addressed store:
entries carry only their SHA-256, so a document can be deleted without
touching the log, and anyone holding a copy can prove it is the one referenced.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ledger.entries import utc_now
from ledger.errors import InvalidInput, LimitExceeded, NotFound
from ledger.storage.db import Database
from ledger.storage.vault_repo import DocumentRepo, VaultRepo
from ledger.storage.vault_tables import Document, VaultVehicle

_VIN_RE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
_MEDIA_RE = re.compile(r"^[a-z]+/[a-z0-9.+-]{1,80}$")
VAULT_SECRET_FILENAME = "vault.secret"  # noqa: S105  (a file name, not a secret)
MAX_DOCUMENT = 10 * 1024 * 1024


def normalize_vin(vin: str) -> str:
    """Upper-case, drop spaces and dashes, and check the ISO 3779 shape (17 chars, no I, O or Q)."""
    value = re.sub(r"[\s-]", "", vin or "").upper() if isinstance(vin, str) else ""
    if not _VIN_RE.match(value):
        raise InvalidInput("vin: expected a 17-character VIN (letters and digits, no I, O or Q)",
                           code="invalid_field", field="vin")
    return value


def pseudonym_from_key(vehicle_key: bytes, vin: str) -> str:
    digest = hmac.new(vehicle_key, normalize_vin(vin).encode("ascii"), hashlib.sha256).digest()
    return "veh-" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def load_or_create_secret(path: Path) -> bytes:
    """The server-wide vault secret (32 random bytes, file mode 0600)."""
    if path.exists():
        data = path.read_bytes()
        if len(data) != 32:
            raise InvalidInput(f"vault secret {path} is not 32 bytes", code="invalid_field")
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create_secret(path)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
        handle.flush()
        os.fsync(handle.fileno())
    return secret


class VehicleVault:
    """Pseudonyms for VINs, and their erasure."""

    def __init__(self, db: Database, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("the vault secret is 32 bytes")
        self._repo = VaultRepo(db)
        self._secret = secret

    @classmethod
    def open(cls, db: Database, data_dir: Path) -> VehicleVault:
        return cls(db, load_or_create_secret(data_dir / VAULT_SECRET_FILENAME))

    def _lookup(self, vin: str) -> str:
        return hmac.new(self._secret, normalize_vin(vin).encode("ascii"), hashlib.sha256).hexdigest()

    def pseudonym(self, vin: str) -> str:
        """The vehicle's pseudonym, creating its random key on first use."""
        lookup = self._lookup(vin)

        def make() -> VaultVehicle:
            key = secrets.token_bytes(32)
            return VaultVehicle(lookup=lookup, vehicle_key=key, pseudonym=pseudonym_from_key(key, vin),
                                created_at=utc_now())

        return self._repo.get_or_create(lookup, make).pseudonym

    def find(self, vin: str) -> str | None:
        """The pseudonym if the VIN is (still) linked, else ``None``."""
        row = self._repo.find(self._lookup(vin))
        return None if row is None else row.pseudonym

    def erase(self, vin: str) -> str:
        """Unlink the VIN forever; returns the pseudonym that was unlinked. ``NotFound`` if none is linked."""
        lookup = self._lookup(vin)
        row = self._repo.find(lookup)
        if row is None or not self._repo.erase(lookup):
            raise NotFound("no vehicle with this VIN is linked in the vault", code="not_found", field="vin")
        return row.pseudonym


@dataclass(frozen=True)
class StoredDocument:
    sha256: str
    media_type: str
    size: int
    content: bytes


class DocumentStore:
    """Content-addressed, off-log storage for evidence and free text."""

    def __init__(self, db: Database) -> None:
        self._repo = DocumentRepo(db)

    def put(self, content: bytes, media_type: str = "application/octet-stream") -> str:
        if len(content) > MAX_DOCUMENT:
            raise LimitExceeded(f"a document is at most {MAX_DOCUMENT} bytes", code="body_too_large")
        if not _MEDIA_RE.match(media_type):
            raise InvalidInput("media_type: expected a MIME type like application/pdf", code="invalid_field",
                               field="media_type")
        digest = hashlib.sha256(content).hexdigest()
        self._repo.put(Document(sha256=digest, media_type=media_type, size=len(content), content=content,
                                created_at=utc_now()))
        return digest

    def get(self, sha256: str) -> StoredDocument:
        row = self._repo.get(sha256)
        if row is None:
            raise NotFound(f"no document with SHA-256 {sha256}", field="sha256")
        return StoredDocument(row.sha256, row.media_type, row.size, bytes(row.content))

    def delete(self, sha256: str) -> None:
        if not self._repo.delete(sha256):
            raise NotFound(f"no document with SHA-256 {sha256}", field="sha256")


__all__ = ["DocumentStore", "StoredDocument", "VehicleVault", "normalize_vin", "pseudonym_from_key"]
