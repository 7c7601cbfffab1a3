"""Signed notes (SPEC §3.5): C2SP ``signed-note`` with Ed25519 keys.

A signed note is a UTF-8 text ending in a newline, a blank line, then one or
more signature lines::

    <text, ending in "\\n">
    <empty line>
    — <key name> <base64(4-byte key hash || 64-byte Ed25519 signature)>

The key hash is ``SHA-256(name || "\\n" || 0x01 || public key)[:4]``, and a
verifier key is published as ``<name>+<8 hex digits of key hash>+<base64(0x01
|| public key)>``. Both are byte-compatible with Go's
``golang.org/x/mod/sumdb/note`` and with https://c2sp.org/signed-note.

:func:`open_note` follows the rules of Go's ``note.Open`` and is stricter in
three places, each of which only refuses notes a conforming signer never
writes:

* base64 must be canonical (correct padding, zero trailing bits), so a note
  has exactly one encoding and no byte of it can change without detection;
* every signature line from a known key is verified, including repeats
  (Go verifies only the first and skips identical-key repeats; the C2SP text
  says a known key's signature MUST be verified);
* a note may be at most :data:`MAX_NOTE_SIZE` bytes (Go has only the
  100-signature limit, which is kept as :data:`MAX_SIGNATURES`).

Private key material never appears in an exception message, ``repr`` or
``str``: :class:`Signer` prints only its name and key hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.signing

from ledger.errors import InvalidInput, ProofError

ALG_ED25519 = 0x01
"""Signature type byte for Ed25519 in key hashes and encoded keys."""

MAX_SIGNATURES = 100
"""At most this many signature lines in a note (Go's ``note.Open`` limit)."""

MAX_NOTE_SIZE = 1 << 20
"""At most this many bytes in a signed note."""

SIGNATURE_PREFIX = "— "
"""Every signature line starts with an em dash (U+2014) and a space."""

_PRIVATE_PREFIX = "PRIVATE+KEY+"

# Go's unicode.IsSpace: the Unicode White_Space property.
_WHITE_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_BASE64 = re.compile("[A-Za-z0-9+/]*={0,2}")
_HEX8 = re.compile("[0-9A-Fa-f]{8}")


def _b64decode_canonical(text: str) -> bytes | None:
    """Decode standard padded base64, or return ``None`` unless ``text`` is its only encoding."""
    if len(text) % 4 or not _BASE64.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def _bad_control(text: str) -> int | None:
    """Index of the first ASCII control character other than newline, if any."""
    match = _CONTROL.search(text)
    return None if match is None else match.start()


def _is_valid_name(name: str) -> bool:
    """A key name: non-empty UTF-8 with no Unicode space, no ``+`` and no control character."""
    if not name or "+" in name or any(ch in _WHITE_SPACE for ch in name) or _bad_control(name) is not None:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_name(name: object, what: str = "key name") -> str:
    if not isinstance(name, str) or not _is_valid_name(name):
        raise InvalidInput(
            f"{what} {name!r} is not valid: it must be non-empty UTF-8 without spaces, '+' or control characters",
            code="invalid_field",
            field="name",
        )
    return name


def _raw_key_hash(name: str, encoded_key: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + encoded_key).digest()[:4]


def key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte key hash: ``SHA-256(name || "\\n" || 0x01 || public_key)[:4]``."""
    _check_name(name)
    if not isinstance(public_key, bytes) or len(public_key) != 32:
        raise InvalidInput("an Ed25519 public key is exactly 32 bytes", code="invalid_field", field="public_key")
    return _raw_key_hash(name, bytes([ALG_ED25519]) + public_key)


def verifier_key(name: str, public_key: bytes) -> str:
    """The encoded verifier key ``<name>+<hex key hash>+<base64(0x01 || public key)>``."""
    kh = key_hash(name, public_key)
    return f"{name}+{kh.hex()}+{base64.b64encode(bytes([ALG_ED25519]) + public_key).decode('ascii')}"


def signer_key(name: str, private_seed: bytes) -> str:
    """The encoded signer key ``PRIVATE+KEY+<name>+<hex key hash>+<base64(0x01 || seed)>`` (Go format).

    The result is a secret: anyone holding it can sign as ``name``.
    """
    if not isinstance(private_seed, bytes) or len(private_seed) != 32:
        raise InvalidInput("an Ed25519 private seed is exactly 32 bytes", code="invalid_field", field="private_seed")
    public_key = bytes(nacl.signing.SigningKey(private_seed).verify_key)
    kh = key_hash(name, public_key)
    encoded = base64.b64encode(bytes([ALG_ED25519]) + private_seed).decode("ascii")
    return f"{_PRIVATE_PREFIX}{name}+{kh.hex()}+{encoded}"


@dataclass(frozen=True)
class Verifier:
    """A trusted public key: its name, 4-byte key hash and 32-byte Ed25519 public key."""

    name: str
    key_hash: bytes
    public_key: bytes
    _verify_key: nacl.signing.VerifyKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        expected = key_hash(self.name, self.public_key)
        if self.key_hash != expected:
            raise InvalidInput(
                f"key hash for {self.name!r} does not match its public key (expected {expected.hex()})",
                code="invalid_field",
                field="key_hash",
            )
        object.__setattr__(self, "_verify_key", nacl.signing.VerifyKey(self.public_key))

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> Verifier:
        """The verifier for ``public_key`` under ``name``, with its key hash computed."""
        return cls(name, key_hash(name, public_key), public_key)

    def verifier_key(self) -> str:
        """This key in the encoded verifier-key format."""
        return verifier_key(self.name, self.public_key)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Whether ``sig`` is a valid Ed25519 signature of ``msg`` by this key."""
        if len(sig) != 64:
            return False
        try:
            self._verify_key.verify(bytes(msg), bytes(sig))
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return False
        return True


def parse_verifier_key(vkey: str) -> Verifier:
    """Parse ``<name>+<hex key hash>+<base64(0x01 || public key)>``.

    Raises :class:`InvalidInput` when the key is malformed, uses an algorithm
    other than Ed25519, has a key hash that does not match, or has a bad name.
    """
    if not isinstance(vkey, str):
        raise InvalidInput("a verifier key is a string", code="invalid_field", field="vkey")
    name, sep1, rest = vkey.partition("+")
    hash16, sep2, key64 = rest.partition("+")
    if not sep1 or not sep2:
        raise InvalidInput(
            "verifier key must have the form <name>+<8 hex digits>+<base64 key>", code="invalid_field", field="vkey"
        )
    _check_name(name)
    if not _HEX8.fullmatch(hash16):
        raise InvalidInput(
            f"verifier key hash {hash16!r} is not 8 hexadecimal digits", code="invalid_field", field="vkey"
        )
    raw = _b64decode_canonical(key64)
    if not raw:
        raise InvalidInput("verifier key data is not canonical, non-empty base64", code="invalid_field", field="vkey")
    if _raw_key_hash(name, raw) != bytes.fromhex(hash16):
        raise InvalidInput(
            f"verifier key hash {hash16} does not match the key for {name!r}", code="invalid_field", field="vkey"
        )
    if raw[0] != ALG_ED25519:
        raise InvalidInput(
            f"verifier key algorithm 0x{raw[0]:02x} is not supported; only 0x01 (Ed25519) is",
            code="invalid_field",
            field="vkey",
        )
    if len(raw) != 33:
        raise InvalidInput("an Ed25519 verifier key holds exactly 32 key bytes", code="invalid_field", field="vkey")
    return Verifier(name, bytes.fromhex(hash16), raw[1:])


class Signer:
    """A named Ed25519 signing key. Its ``repr`` and ``str`` never show the key."""

    __slots__ = ("_key_hash", "_name", "_public_key", "_signing_key")

    def __init__(self, name: str, signing_key: nacl.signing.SigningKey) -> None:
        _check_name(name)
        if not isinstance(signing_key, nacl.signing.SigningKey):
            raise InvalidInput(
                "signing_key must be a nacl.signing.SigningKey", code="invalid_field", field="signing_key"
            )
        self._name = name
        self._signing_key = signing_key
        self._public_key = bytes(signing_key.verify_key)
        self._key_hash = key_hash(name, self._public_key)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A signer with a fresh random key."""
        return cls(name, nacl.signing.SigningKey.generate())

    @classmethod
    def from_signer_key(cls, skey: str) -> Signer:
        """Parse an encoded signer key ``PRIVATE+KEY+<name>+<hex hash>+<base64(0x01 || seed)>``.

        Raises :class:`InvalidInput` (whose message never repeats the key).
        """
        if not isinstance(skey, str) or not skey.startswith(_PRIVATE_PREFIX):
            raise InvalidInput("signer key must start with PRIVATE+KEY+", code="invalid_field", field="skey")
        name, sep1, rest = skey[len(_PRIVATE_PREFIX) :].partition("+")
        hash16, sep2, key64 = rest.partition("+")
        if not sep1 or not sep2 or not _HEX8.fullmatch(hash16) or not _is_valid_name(name):
            raise InvalidInput(
                "signer key must have the form PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>",
                code="invalid_field",
                field="skey",
            )
        raw = _b64decode_canonical(key64)
        if not raw or raw[0] != ALG_ED25519 or len(raw) != 33:
            raise InvalidInput(
                "signer key data must be canonical base64 of 0x01 and a 32-byte Ed25519 seed",
                code="invalid_field",
                field="skey",
            )
        signer = cls(name, nacl.signing.SigningKey(raw[1:]))
        if signer.key_hash != bytes.fromhex(hash16):
            raise InvalidInput(
                f"signer key hash {hash16} does not match the key for {name!r}", code="invalid_field", field="skey"
            )
        return signer

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_hash(self) -> bytes:
        return self._key_hash

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def verifier(self) -> Verifier:
        """The public half of this signer."""
        return Verifier(self._name, self._key_hash, self._public_key)

    def verifier_key(self) -> str:
        """The encoded verifier key of this signer."""
        return verifier_key(self._name, self._public_key)

    def sign(self, text: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of ``text``."""
        return self._signing_key.sign(bytes(text)).signature

    def __repr__(self) -> str:
        return f"Signer(name={self._name!r}, key_hash={self._key_hash.hex()!r})"

    __str__ = __repr__


def _note_text_bytes(text: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidInput("note text must be a string", code="invalid_field", field="text")
    if not text.endswith("\n"):
        raise InvalidInput("note text must end with a newline", code="invalid_field", field="text")
    position = _bad_control(text)
    if position is not None:
        raise InvalidInput(
            f"note text has control character {text[position]!r} at offset {position}; only newline is allowed",
            code="invalid_field",
            field="text",
        )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("note text is not encodable as UTF-8", code="invalid_field", field="text") from None


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """Sign ``text`` (which must end in a newline) with each signer, in order."""
    raw = _note_text_bytes(text)
    if not signers:
        raise InvalidInput("a signed note needs at least one signer", code="invalid_field", field="signers")
    if len(signers) > MAX_SIGNATURES:
        raise InvalidInput(f"at most {MAX_SIGNATURES} signers", code="invalid_field", field="signers")
    seen: set[tuple[str, bytes]] = set()
    lines: list[str] = []
    for signer in signers:
        if not isinstance(signer, Signer):
            raise InvalidInput("every signer must be a ledger.note.Signer", code="invalid_field", field="signers")
        ident = (signer.name, signer.key_hash)
        if ident in seen:
            raise InvalidInput(
                f"signer {signer.name}+{signer.key_hash.hex()} is listed twice", code="invalid_field", field="signers"
            )
        seen.add(ident)
        sig = base64.b64encode(signer.key_hash + signer.sign(raw)).decode("ascii")
        lines.append(f"{SIGNATURE_PREFIX}{signer.name} {sig}\n")
    note = text + "\n" + "".join(lines)
    if len(note.encode("utf-8")) > MAX_NOTE_SIZE:
        raise InvalidInput(f"a signed note is at most {MAX_NOTE_SIZE} bytes", code="invalid_field", field="text")
    return note


@dataclass(frozen=True)
class Note:
    """An opened note: its text and which signatures verified."""

    text: str
    verified: tuple[Verifier, ...]
    unverified_lines: tuple[str, ...]
    """Signature lines (without the newline) from keys that were not among the verifiers."""


def _malformed(rule: str) -> ProofError:
    return ProofError(f"malformed signed note: {rule}", code="bad_note", field="note")


def open_note(note: str | bytes, verifiers: Sequence[Verifier]) -> Note:
    """Open a signed note, verifying every signature made by one of ``verifiers``.

    Raises :class:`ProofError` (code ``bad_note``) if the note is malformed,
    if a signature from a known key does not verify, or if no known key
    signed it. Signatures by other keys are kept in ``unverified_lines``.
    """
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        if not isinstance(verifier, Verifier):
            raise InvalidInput("every verifier must be a ledger.note.Verifier", code="invalid_field", field="verifiers")
        ident = (verifier.name, verifier.key_hash)
        other = known.get(ident)
        if other is not None and other.public_key != verifier.public_key:
            raise InvalidInput(
                f"two different verifiers share the name and key hash {verifier.name}+{verifier.key_hash.hex()}",
                code="invalid_field",
                field="verifiers",
            )
        known[ident] = verifier

    if isinstance(note, str):
        try:
            raw = note.encode("utf-8")
        except UnicodeEncodeError:
            raise _malformed("not valid UTF-8") from None
    elif isinstance(note, bytes | bytearray):
        raw = bytes(note)
    else:
        raise InvalidInput("a signed note is str or bytes", code="invalid_field", field="note")
    if len(raw) > MAX_NOTE_SIZE:
        raise _malformed(f"larger than {MAX_NOTE_SIZE} bytes")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(f"not valid UTF-8 (byte offset {exc.start})") from None
    position = _bad_control(decoded)
    if position is not None:
        raise _malformed(f"control character {decoded[position]!r} (only newline is allowed)")

    split = decoded.rfind("\n\n")
    if split < 0:
        raise _malformed("no blank line before the signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block.endswith("\n"):
        raise _malformed("the signature block is empty or does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise _malformed(f"more than {MAX_SIGNATURES} signatures")

    text_bytes = text.encode("utf-8")
    verified: list[Verifier] = []
    verified_ids: set[tuple[str, bytes]] = set()
    unverified: list[str] = []
    unknown_keys: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(SIGNATURE_PREFIX):
            raise _malformed(f"signature line {number} does not start with an em dash and a space")
        name, _, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        sig = _b64decode_canonical(b64)
        if not _is_valid_name(name) or sig is None or len(sig) < 5:
            raise _malformed(f"signature line {number} is not '— <key name> <base64 key hash and signature>'")
        ident = (name, sig[:4])
        found = known.get(ident)
        if found is None:
            if line not in unverified:
                unverified.append(line)
                unknown_keys.append(f"{name}+{sig[:4].hex()}")
            continue
        if not found.verify(text_bytes, sig[4:]):
            raise ProofError(
                f"signature by known key {name}+{sig[:4].hex()} does not verify", code="bad_note", field="note"
            )
        if ident not in verified_ids:
            verified_ids.add(ident)
            verified.append(found)

    if not verified:
        raise ProofError(
            f"note is not signed by any known key (signed only by: {', '.join(dict.fromkeys(unknown_keys))})",
            code="bad_note",
            field="note",
        )
    return Note(text=text, verified=tuple(verified), unverified_lines=tuple(unverified))


__all__ = [
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "SIGNATURE_PREFIX",
    "Note",
    "Signer",
    "Verifier",
    "key_hash",
    "open_note",
    "parse_verifier_key",
    "sign_note",
    "signer_key",
    "verifier_key",
]
