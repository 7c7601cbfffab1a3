"""Entries and records (SPEC §3.2–§3.3).

An **entry** is what an actor signs::

    {"v": 1, "origin": "<log origin>", "type": "<event type>",
     "org": "<actor org id>", "kid": "<actor key id>",
     "time": "2026-11-28T12:00:00Z", "nonce": "<base64url, 16 random bytes>",
     "body": {...}}

A **signed entry** is ``{"entry": {...}, "sig": "<base64 Ed25519 signature>"}``
where the signature covers ``"partsledger/v1/entry\\n" || JCS(entry)``.
The entry id is ``hex(SHA-256(JCS(entry)))``.

A **record** is what the log stores::

    {"v": 1, "seq": n, "prev": "<base64 leaf hash of record n-1>",
     "logged": "<server time>", "entry": {...}, "sig": "..."}

Its leaf hash is ``SHA-256(0x00 || JCS(record))``: the hash-chain link and the
Merkle leaf at once. Genesis (seq 0) has ``prev`` = 32 zero bytes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.canonical import MAX_SAFE_INTEGER, canonical_bytes, canonical_value, parse_json
from ledger.errors import InvalidInput
from ledger.keys import KeyPair, b64decode, b64encode, b64url_encode, verify_signature

FORMAT_VERSION = 1
ZERO_HASH = bytes(32)

ENTRY_FIELDS = frozenset({"v", "origin", "type", "org", "kid", "time", "nonce", "body"})
RECORD_FIELDS = frozenset({"v", "seq", "prev", "logged", "entry", "sig"})
_RECORD_HEAD = b'{"entry":'
_RECORD_TAIL = b'","v":' + str(FORMAT_VERSION).encode("ascii") + b"}"

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_ORG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
_KID_RE = re.compile(r"^[0-9a-f]{32}$")
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


_NOW: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """The current time as an RFC 3339 UTC string with second precision."""
    global _NOW
    seconds = int(time.time())
    cached = _NOW  # one tuple read: a racing thread sees an old or a new pair, never half of each
    if cached[0] != seconds:
        cached = _NOW = (seconds, format_time(datetime.fromtimestamp(seconds, UTC)))
    return cached[1]


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise InvalidInput("times must be timezone-aware", code="invalid_time")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any, *, field: str = "time") -> datetime:
    """Parse an RFC 3339 UTC time of the form ``2026-11-28T12:00:00Z`` (fractions allowed)."""
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise InvalidInput(
            f"{field}: expected an RFC 3339 UTC time like 2026-11-28T12:00:00Z", code="invalid_time", field=field
        )
    return _parse_utc(text, field)


@functools.lru_cache(maxsize=4096)
def _parse_utc(text: str, field: str) -> datetime:
    # Cached: a batch's entries and the log's clock mostly repeat the same few seconds (errors are not cached).
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"{field}: {text!r} is not a real date and time", code="invalid_time", field=field) from None


def is_valid_org_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_ORG_RE.match(value))


@dataclass(frozen=True)
class Entry:
    """A validated, parsed entry together with its canonical bytes."""

    data: dict[str, Any]
    canonical: bytes

    @functools.cached_property
    def entry_id(self) -> str:
        return hashlib.sha256(self.canonical).hexdigest()

    @property
    def type(self) -> str:
        return str(self.data["type"])

    @property
    def org(self) -> str:
        return str(self.data["org"])

    @property
    def kid(self) -> str:
        return str(self.data["kid"])

    @property
    def origin(self) -> str:
        return str(self.data["origin"])

    @property
    def time(self) -> str:
        return str(self.data["time"])

    @property
    def body(self) -> dict[str, Any]:
        body = self.data["body"]
        assert isinstance(body, dict)
        return body


@dataclass(frozen=True)
class SignedEntry:
    entry: Entry
    signature: bytes

    @property
    def entry_id(self) -> str:
        return self.entry.entry_id

    def to_json(self) -> dict[str, Any]:
        return {"entry": self.entry.data, "sig": b64encode(self.signature)}

    def verify(self, public_key: bytes) -> None:
        verify_signature(public_key, "entry", self.entry.canonical, self.signature)


def validate_entry(data: Any) -> Entry:
    """Check an entry's envelope fields (not its body, which the event catalogue checks)."""
    _check_entry_fields(data)
    return Entry(data=data, canonical=canonical_bytes(data))


def _check_entry_fields(data: Any) -> None:
    """:func:`validate_entry`'s checks, without computing the canonical bytes."""
    if not isinstance(data, dict):
        raise InvalidInput("entry: expected a JSON object", code="invalid_entry", field="entry")
    missing = sorted(ENTRY_FIELDS - data.keys())
    if missing:
        raise InvalidInput(f"entry: missing field(s) {', '.join(missing)}", code="invalid_entry", field=missing[0])
    extra = sorted(data.keys() - ENTRY_FIELDS)
    if extra:
        raise InvalidInput(f"entry: unknown field(s) {', '.join(extra)}", code="invalid_entry", field=extra[0])
    if data["v"] != FORMAT_VERSION or isinstance(data["v"], bool):
        raise InvalidInput(f"entry.v: only format version {FORMAT_VERSION} is supported", code="unsupported_version",
                           field="v")
    if not isinstance(data["origin"], str) or not data["origin"]:
        raise InvalidInput("entry.origin: expected the log's origin string", code="invalid_entry", field="origin")
    if not isinstance(data["type"], str) or not _TYPE_RE.match(data["type"]):
        raise InvalidInput("entry.type: expected a dotted event type such as part.commission", code="invalid_entry",
                           field="type")
    if not is_valid_org_id(data["org"]):
        raise InvalidInput("entry.org: expected an org id of 3–64 characters a-z, 0-9 and '-'", code="invalid_entry",
                           field="org")
    if not isinstance(data["kid"], str) or not _KID_RE.match(data["kid"]):
        raise InvalidInput("entry.kid: expected a 32-hex-digit key id", code="invalid_entry", field="kid")
    parse_time(data["time"], field="entry.time")
    if not isinstance(data["nonce"], str) or not _NONCE_RE.match(data["nonce"]):
        raise InvalidInput("entry.nonce: expected 16–64 base64url characters", code="invalid_entry", field="nonce")
    if not isinstance(data["body"], dict):
        raise InvalidInput("entry.body: expected a JSON object", code="invalid_body", field="body")


def parse_signed_entry(data: Any) -> SignedEntry:
    """Parse ``{"entry": {...}, "sig": "..."}``; signature is not verified here."""
    if not isinstance(data, dict):
        raise InvalidInput("expected a JSON object with 'entry' and 'sig'", code="invalid_entry")
    if set(data.keys()) != {"entry", "sig"}:
        raise InvalidInput("a signed entry has exactly the fields 'entry' and 'sig'", code="invalid_entry")
    entry = validate_entry(data["entry"])
    sig = b64decode(data["sig"], field="sig", size=64)
    return SignedEntry(entry=entry, signature=sig)


def build_entry(*, origin: str, type: str, org: str, kid: str, body: dict[str, Any], time: str | None = None,
                nonce: str | None = None) -> Entry:
    data = {
        "v": FORMAT_VERSION,
        "origin": origin,
        "type": type,
        "org": org,
        "kid": kid,
        "time": time or utc_now(),
        "nonce": nonce or b64url_encode(secrets.token_bytes(16)),
        "body": body,
    }
    return validate_entry(data)


def sign_entry(entry: Entry, key: KeyPair) -> SignedEntry:
    return SignedEntry(entry=entry, signature=key.sign("entry", entry.canonical))


def make_signed_entry(key: KeyPair, *, origin: str, type: str, org: str, body: dict[str, Any],
                      time: str | None = None, nonce: str | None = None) -> SignedEntry:
    """Build and sign an entry in one step (clients and the demo use this)."""
    entry = build_entry(origin=origin, type=type, org=org, kid=key.kid, body=body, time=time, nonce=nonce)
    return sign_entry(entry, key)


@dataclass(frozen=True)
class Record:
    """A record as stored: its exact canonical bytes and what they say."""

    seq: int
    prev: bytes
    logged: str
    signed: SignedEntry
    canonical: bytes

    @property
    def leaf_hash(self) -> bytes:
        return hashlib.sha256(b"\x00" + self.canonical).digest()

    @property
    def entry(self) -> Entry:
        return self.signed.entry

    def to_json(self) -> dict[str, Any]:
        return parse_json(self.canonical)  # type: ignore[no-any-return]


def build_record(seq: int, prev: bytes, logged: str, signed: SignedEntry) -> Record:
    """The record of ``signed`` at ``seq``, with its canonical bytes (RFC 8785).

    The entry's canonical bytes are already known (they are what was signed), so the record's are
    spliced around them rather than re-canonicalising the whole entry: RFC 8785 sorts the record's
    keys as entry, logged, prev, seq, sig, v, and base64, a time of the form ``_TIME_RE`` and a
    non-negative integer need no escaping. Anything else falls back to full canonicalisation.
    """
    if (type(seq) is int and 0 <= seq <= MAX_SAFE_INTEGER and isinstance(logged, str)
            and _TIME_RE.match(logged) and len(prev) == 32):
        canonical = b"".join((
            b'{"entry":', signed.entry.canonical,
            b',"logged":"', logged.encode("ascii"),
            b'","prev":"', base64.b64encode(prev),
            b'","seq":', str(seq).encode("ascii"),
            b',"sig":"', base64.b64encode(signed.signature),
            _RECORD_TAIL,
        ))
        return Record(seq=seq, prev=prev, logged=logged, signed=signed, canonical=canonical)
    return build_record_slow(seq, prev, logged, signed)


def build_record_slow(seq: int, prev: bytes, logged: str, signed: SignedEntry) -> Record:
    """:func:`build_record` by canonicalising the whole record (the reference the splice must equal)."""
    data = {
        "v": FORMAT_VERSION,
        "seq": seq,
        "prev": b64encode(prev),
        "logged": logged,
        "entry": signed.entry.data,
        "sig": b64encode(signed.signature),
    }
    return Record(seq=seq, prev=prev, logged=logged, signed=signed, canonical=canonical_bytes(data))


def parse_record(raw: bytes) -> Record:
    """Parse stored record bytes, checking that they are exactly canonical."""
    return parse_record_json(raw)[0]


def parse_record_json(raw: bytes) -> tuple[Record, dict[str, Any]]:
    """:func:`parse_record`, also returning the decoded record (``parse_json(raw)``).

    The entry's canonical bytes are taken from ``raw`` rather than computed again. Once
    ``raw == JCS(record)`` is checked, RFC 8785 makes ``raw`` the concatenation of
    ``{"entry":``, ``JCS(entry)`` and the other members (``entry`` sorts first), so ``JCS(entry)`` is
    what lies between that head and the canonical bytes of the other members, which are computed
    and checked against the end of ``raw`` before the slice is taken.
    """
    data = canonical_value(raw)  # canonical bytes (all that a log stores) are parsed and checked at once
    checked = data is not None
    if not checked:
        data = parse_json(raw)
    if not isinstance(data, dict) or set(data.keys()) != RECORD_FIELDS:
        raise InvalidInput("record: expected fields v, seq, prev, logged, entry, sig", code="integrity")
    if not checked and canonical_bytes(data) != raw:
        raise InvalidInput("record: bytes are not in canonical form", code="integrity")
    if data["v"] != FORMAT_VERSION or not isinstance(data["seq"], int) or isinstance(data["seq"], bool):
        raise InvalidInput("record: bad version or sequence number", code="integrity")
    prev = b64decode(data["prev"], field="record.prev", size=32)
    parse_time(data["logged"], field="record.logged")
    entry_data = data["entry"]
    _check_entry_fields(entry_data)
    rest = canonical_bytes({k: data[k] for k in ("logged", "prev", "seq", "sig", "v")})
    tail = b"," + rest[1:]
    end = len(raw) - len(tail)
    if end > len(_RECORD_HEAD) and raw.startswith(_RECORD_HEAD) and raw.endswith(tail):
        entry_bytes = raw[len(_RECORD_HEAD):end]
    else:  # cannot happen for canonical bytes; computed rather than trusted if it ever does
        entry_bytes = canonical_bytes(entry_data)
    sig = b64decode(data["sig"], field="sig", size=64)
    signed = SignedEntry(entry=Entry(data=entry_data, canonical=entry_bytes), signature=sig)
    record = Record(seq=data["seq"], prev=prev, logged=data["logged"], signed=signed, canonical=raw)
    return record, data


__all__ = [
    "FORMAT_VERSION",
    "ZERO_HASH",
    "Entry",
    "Record",
    "SignedEntry",
    "build_entry",
    "build_record",
    "build_record_slow",
    "format_time",
    "is_valid_org_id",
    "make_signed_entry",
    "parse_record",
    "parse_record_json",
    "parse_signed_entry",
    "parse_time",
    "sign_entry",
    "utc_now",
    "validate_entry",
]
