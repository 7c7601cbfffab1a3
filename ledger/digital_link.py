"""GS1 Digital Link URIs for serialised parts (SPEC §3.7), with the AI 8030 signature.

A part's QR code carries an *uncompressed* GS1 Digital Link URI::

    https://<resolver host>/01/<GTIN-14>/21/<serial>[?10=<lot>]&8030=<sig>

(the separator before ``8030`` is ``?`` when there is no lot). ``sig`` is the
commissioning org's Ed25519 signature, base64url without padding, over the
GS1 element string ``01<GTIN-14>21<serial>`` with the domain separation of
purpose ``part-id`` (:mod:`ledger.keys`). Anyone holding the org's public key
(from the ledger or an offline trust bundle) can check it without a network:
a label printed by someone who does not hold the key cannot carry a valid
signature. The lot is deliberately *not* signed: it is a fact recorded in
the ledger at commissioning and checked there, and leaving it out keeps the
signature valid for the physical part whatever the label layout.

Parsing accepts uncompressed URIs (via ``biip``, the GS1 parser) and
*compressed* Digital Link URIs (via ``gs1-compression``, a port of GS1's
compression prototype); compressed URIs are never emitted. ``gs1-compression``
predates AI 8030, so :func:`_compression_tables` registers it (format
``Z..90``, encoded as variable-length alphanumeric) before first use. A
signature may also ride as an ordinary ``?8030=`` query parameter after a
compressed path.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ledger.errors import InvalidInput, SignatureError
from ledger.gs1 import GS1_CHARSET_82, gtin_check_digit, validate_gtin, validate_lot, validate_serial
from ledger.keys import KeyPair, b64url_decode, b64url_encode, verify_signature

SIG_RE = re.compile(r"^[A-Za-z0-9_-]{86}$")  # 64 bytes, base64url, no padding
COMPRESSED_RE = re.compile(r"^/(?:[^/]+/)*([A-Za-z0-9_-]{10,})$")
MAX_URI_CHARS = 2048

# The identifier rules are the domain's (ledger.gs1); these names are kept for readers of this module.
CSET82 = GS1_CHARSET_82
check_gtin = validate_gtin
check_serial = validate_serial
check_lot = validate_lot


def element_string(gtin: str, serial: str) -> bytes:
    """The bytes the AI 8030 signature covers: ``01<GTIN-14>21<serial>`` in ASCII."""
    return f"01{check_gtin(gtin)}21{check_serial(serial)}".encode("ascii")


def sign_part_id(key: KeyPair, gtin: str, serial: str) -> str:
    """The AI 8030 value: base64url(Ed25519(part-id prefix || element string)). Done by the commissioning org."""
    return b64url_encode(key.sign("part-id", element_string(gtin, serial)))


def decode_part_sig(sig: str, *, field: str = "8030") -> bytes:
    """Decode an AI 8030 value to the 64 signature bytes, or raise ``invalid_field``."""
    if not isinstance(sig, str) or not SIG_RE.match(sig):
        raise InvalidInput(f"{field}: expected an Ed25519 signature as 86 base64url characters",
                           code="invalid_field", field=field)
    return b64url_decode(sig, field=field)


def verify_part_sig(public_key: bytes, gtin: str, serial: str, sig: str) -> None:
    """Raise :class:`SignatureError` unless ``sig`` is ``public_key``'s part-id signature of ``gtin``/``serial``."""
    try:
        raw = decode_part_sig(sig)
    except InvalidInput as exc:
        raise SignatureError(exc.message, code="bad_signature", field="8030") from None
    verify_signature(public_key, "part-id", element_string(gtin, serial), raw)


@dataclass(frozen=True)
class PartLink:
    """What a Digital Link URI names: a serialised part, its lot and the offline signature, if present."""

    gtin: str
    serial: str
    lot: str | None = None
    sig: str | None = None
    compressed: bool = False

    @property
    def subject(self) -> str:
        """The part's key as used across the ledger: ``<gtin>/<serial>``."""
        return f"{self.gtin}/{self.serial}"


@lru_cache(maxsize=256)
def normalize_base(base: str) -> str:
    """A resolver base URL (``https://host[/prefix]``) without a trailing slash (remembered: a server has
    one or two)."""
    parts = urlsplit(base)
    if parts.scheme not in {"https", "http"} or not parts.netloc or parts.query or parts.fragment:
        raise InvalidInput(f"resolver base {base!r} must be an http(s) URL without query or fragment",
                           code="invalid_uri", field="resolver_base")
    return base.rstrip("/")


def build_uri(base: str, gtin: str, serial: str, *, lot: str | None = None, sig: str | None = None) -> str:
    """The uncompressed Digital Link URI of a part. Serial and lot are percent-encoded (GS1 DL §6)."""
    uri = f"{normalize_base(base)}/01/{check_gtin(gtin)}/21/{quote(check_serial(serial), safe='')}"
    query: list[str] = []
    if lot is not None:
        query.append(f"10={quote(check_lot(lot), safe='')}")
    if sig is not None:
        decode_part_sig(sig)
        query.append(f"8030={sig}")
    return uri + ("?" + "&".join(query) if query else "")


def _biip_elements(uri: str) -> dict[str, str]:
    from biip import ParseError
    from biip.gs1_digital_link_uris import GS1DigitalLinkURI

    try:
        parsed = GS1DigitalLinkURI.parse(uri)
    except ParseError as exc:
        raise InvalidInput(f"not a GS1 Digital Link URI: {exc}", code="invalid_uri", field="uri") from None
    return {es.ai.ai: es.value for es in parsed.element_strings}


def _query_value(query: str, ai: str) -> str | None:
    values = parse_qs(query, keep_blank_values=True).get(ai)
    return values[-1] if values else None


@cache
def _compression_tables() -> Any:
    """Import ``gs1-compression`` and teach it AI 8030 (its tables predate that AI)."""
    import gs1.constants as tables
    from gs1 import decompress_gs1_digital_link

    # The prototype logs every rejected input at ERROR level under the literal logger name "__name__";
    # a rejected scan is an ordinary 4xx here, not an operator alarm.
    logging.getLogger("__name__").disabled = True
    tables.TABLE_F.setdefault("8030", [{"E": "X", "M": "90"}])
    tables.AI_REGEX.setdefault("8030", re.compile(r"^[A-Za-z0-9_=-]{1,90}$"))
    return decompress_gs1_digital_link


def decompress(uri: str) -> str:
    """Expand a compressed GS1 Digital Link URI to its uncompressed form (numeric AIs in the path)."""
    parts = urlsplit(uri)
    match = COMPRESSED_RE.match(parts.path)
    if parts.scheme not in {"http", "https"} or match is None:
        raise InvalidInput("not a compressed GS1 Digital Link URI", code="invalid_uri", field="uri")
    expand = _compression_tables()
    stripped = parts._replace(query="", fragment="").geturl()
    try:
        expanded = str(expand(stripped, use_short_text=False))
    except Exception as exc:  # the prototype raises bare KeyError/ValueError/IndexError on junk
        raise InvalidInput(f"compressed Digital Link does not decode: {type(exc).__name__}", code="invalid_uri",
                           field="uri") from None
    if parts.query:
        expanded += ("&" if "?" in expanded else "?") + parts.query
    return expanded


def is_compressed(uri: str) -> bool:
    """True if ``uri``'s path is a single compressed segment rather than ``/01/<gtin>/...``."""
    path = urlsplit(uri).path
    return "/01/" not in path and bool(COMPRESSED_RE.match(path))


def parse_uri(uri: str) -> PartLink:
    """Parse an uncompressed or compressed Digital Link URI naming a serialised part.

    Raises :class:`InvalidInput` with ``invalid_uri`` (not a Digital Link, or no serial),
    ``invalid_gtin`` (bad check digit) or ``invalid_serial`` (illegal character).
    """
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_CHARS:
        raise InvalidInput(f"uri: expected a URI of at most {MAX_URI_CHARS} characters", code="invalid_uri",
                           field="uri")
    if urlsplit(uri).scheme not in {"http", "https"}:
        raise InvalidInput("uri: a Digital Link URI starts with https:// (or http://)", code="invalid_uri",
                           field="uri")
    compressed = is_compressed(uri)
    full = decompress(uri) if compressed else uri
    segments = urlsplit(full).path.split("/")
    # Validate the raw path values ourselves first, so a bad check digit or character gets its own code.
    for ai, checker in (("01", check_gtin), ("21", check_serial)):
        if ai in segments and segments.index(ai) + 1 < len(segments):
            checker(unquote(segments[segments.index(ai) + 1]), field="gtin" if ai == "01" else "serial")
    elements = _biip_elements(full)
    if "01" not in elements or "21" not in elements:
        raise InvalidInput("uri: a part's Digital Link needs a GTIN (01) and a serial (21)", code="invalid_uri",
                           field="uri")
    gtin = check_gtin(elements["01"])
    serial = check_serial(elements["21"])
    lot = elements.get("10")
    sig = _query_value(urlsplit(full).query, "8030")
    return PartLink(gtin=gtin, serial=serial, lot=check_lot(lot) if lot is not None else None, sig=sig,
                    compressed=compressed)


__all__ = [
    "CSET82",
    "PartLink",
    "build_uri",
    "check_gtin",
    "check_lot",
    "check_serial",
    "decode_part_sig",
    "decompress",
    "element_string",
    "gtin_check_digit",
    "is_compressed",
    "normalize_base",
    "parse_uri",
    "sign_part_id",
    "verify_part_sig",
]
