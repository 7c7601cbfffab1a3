"""Ed25519 keys: ids, domain-separated signatures and key files.

A key id (``kid``) is derived from the public key, so a kid can never be
re-bound to another key: ``kid = hex(SHA-256("partsledger/v1/key\\n" || pub))[:32]``.

Every signature partsledger makes or checks is over a *domain-separated*
message: a fixed ASCII prefix naming the project, the format version and the
purpose, then the canonical bytes. A signature for one purpose can therefore
never be replayed as a signature for another.

Private keys live only in :class:`nacl.signing.SigningKey` objects and in key
files (mode 0600) outside the database. :class:`KeyPair` never shows the
private half in ``repr``/``str``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nacl.exceptions
import nacl.signing

from ledger.errors import InvalidInput, SignatureError

Purpose = Literal["entry", "part-id", "trust-bundle", "epcis-capture"]

SIGNATURE_PREFIXES: dict[Purpose, bytes] = {
    "entry": b"partsledger/v1/entry\n",
    "part-id": b"partsledger/v1/part-id\n",
    "trust-bundle": b"partsledger/v1/trust-bundle\n",
    "epcis-capture": b"partsledger/v1/epcis-capture\n",
}

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def b64encode(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 §4)."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, field: str = "value", size: int | None = None) -> bytes:
    """Strict standard base64; raises :class:`InvalidInput` naming ``field``."""
    if not isinstance(text, str):
        raise InvalidInput(f"{field}: expected a base64 string", code="invalid_field", field=field)
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidInput(f"{field}: not valid base64", code="invalid_field", field=field) from None
    if b64encode(data) != text:
        raise InvalidInput(f"{field}: non-canonical base64", code="invalid_field", field=field)
    if size is not None and len(data) != size:
        raise InvalidInput(f"{field}: expected {size} bytes, got {len(data)}", code="invalid_field", field=field)
    return data


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5), as used in URIs."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, field: str = "value") -> bytes:
    try:
        padded = text + "=" * (-len(text) % 4)
        data = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidInput(f"{field}: not valid base64url", code="invalid_field", field=field) from None
    if b64url_encode(data) != text:
        raise InvalidInput(f"{field}: non-canonical base64url", code="invalid_field", field=field)
    return data


def key_id(public_key: bytes) -> str:
    """The key id of an Ed25519 public key."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidInput("an Ed25519 public key is 32 bytes", code="invalid_field", field="public_key")
    return _key_id(bytes(public_key))


@functools.lru_cache(maxsize=4096)
def _key_id(public_key: bytes) -> str:
    # Remembered: a batch asks for the same keys' ids more than once (look-up hints, then the handler).
    return hashlib.sha256(b"partsledger/v1/key\n" + public_key).hexdigest()[:32]


def signed_message(purpose: Purpose, payload: bytes) -> bytes:
    """The exact bytes an Ed25519 signature for ``purpose`` covers."""
    return SIGNATURE_PREFIXES[purpose] + payload


def verify_signature(public_key: bytes, purpose: Purpose, payload: bytes, signature: bytes) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is valid for ``payload`` under ``purpose``."""
    check_signature_size(signature)
    try:
        nacl.signing.VerifyKey(public_key).verify(signed_message(purpose, payload), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        raise bad_signature() from None


def check_signature_size(signature: bytes) -> None:
    if len(signature) != SIGNATURE_SIZE:
        raise SignatureError("an Ed25519 signature is 64 bytes", code="bad_signature", field="sig")


def bad_signature() -> SignatureError:
    """The error of a signature that does not verify (however it was checked)."""
    return SignatureError("signature does not verify over the canonical bytes with the named key",
                          code="bad_signature", field="sig")


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 key pair. The private half is never shown in ``repr`` or ``str``."""

    signing_key: nacl.signing.SigningKey = field(repr=False)

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        if len(seed) != 32:
            raise InvalidInput("an Ed25519 seed is 32 bytes", code="invalid_field", field="seed")
        return cls(nacl.signing.SigningKey(seed))

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def kid(self) -> str:
        return key_id(self.public_key)

    def seed(self) -> bytes:
        """The 32-byte private seed. Handle with care: never log or store it in the database."""
        return bytes(self.signing_key)

    def sign(self, purpose: Purpose, payload: bytes) -> bytes:
        return self.signing_key.sign(signed_message(purpose, payload)).signature

    def __repr__(self) -> str:
        return f"KeyPair(kid={self.kid!r})"

    __str__ = __repr__


KEY_FILE_HEADER = "partsledger-ed25519-seed-v1"


def write_key_file(path: Path, pair: KeyPair) -> None:
    """Write ``pair``'s seed to ``path`` with mode 0600, refusing to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(f"{KEY_FILE_HEADER}\n{b64encode(pair.seed())}\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_key_file(path: Path) -> KeyPair:
    """Read a key file written by :func:`write_key_file`."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except OSError as exc:
        raise InvalidInput(f"cannot read key file {path}: {exc.strerror}", code="invalid_field") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"key file {path} is not a partsledger key file", code="invalid_field") from None
    if len(lines) != 2 or lines[0] != KEY_FILE_HEADER:
        raise InvalidInput(f"key file {path} is not a partsledger key file", code="invalid_field")
    try:
        seed = base64.b64decode(lines[1], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"key file {path} is corrupt", code="invalid_field") from None
    return KeyPair.from_seed(seed)


def load_or_create_key_file(path: Path) -> KeyPair:
    """Load the key at ``path``, creating a fresh one (mode 0600) if the file does not exist."""
    if path.exists():
        return read_key_file(path)
    pair = KeyPair.generate()
    try:
        write_key_file(path, pair)
    except FileExistsError:
        return read_key_file(path)
    return pair


__all__ = [
    "KeyPair",
    "Purpose",
    "b64decode",
    "b64encode",
    "b64url_decode",
    "b64url_encode",
    "bad_signature",
    "check_signature_size",
    "key_id",
    "load_or_create_key_file",
    "read_key_file",
    "signed_message",
    "verify_signature",
    "write_key_file",
]
