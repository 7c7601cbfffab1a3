"""GS1 identifiers: GTIN-14, serial numbers (AI 21), GLNs, company prefixes (SPEC §3.7).

Every validator returns the normalised value or raises
:class:`~ledger.errors.InvalidInput` with a stable code (``invalid_gtin``,
``invalid_serial``, ``invalid_field`` for GLNs) and a message that says
what would have been accepted. Check digits use ``biip``'s GS1 standard
algorithm (the same modulo-10 used by GTIN, GLN and SSCC).

Serials the system issues are random (``secrets``), 16 characters of
``0-9A-Z`` by default: ~82 bits, never sequential, so a counterfeiter who
sees one label learns nothing about the next.
"""

from __future__ import annotations

import functools
import re
import secrets
import string

from ledger.errors import InvalidInput

#: The GS1 AI encodable character set 82 (GS1 General Specifications, figure 7.11-1).
GS1_CHARSET_82 = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
SERIAL_MAX = 20
ISSUED_SERIAL_ALPHABET = string.digits + string.ascii_uppercase
ISSUED_SERIAL_LENGTH = 16

_DIGITS = re.compile(r"^\d+$")
_PREFIX = re.compile(r"^\d{6,12}$")


def gtin_check_digit(body13: str) -> int:
    """The GS1 check digit of the first 13 digits of a GTIN-14."""
    if not isinstance(body13, str) or len(body13) != 13 or not _DIGITS.match(body13):
        raise InvalidInput("gtin: expected 13 digits before the check digit", code="invalid_gtin", field="gtin")
    return _check_digit(body13)


@functools.lru_cache(maxsize=4096)
def _check_digit(body13: str) -> int:
    # Remembered: a ledger holds few products, and their GTINs are checked on every scan and part event.
    return gs1_standard_check_digit(body13)


def gs1_standard_check_digit(body: str) -> int:
    """The GS1 standard modulo-10 check digit of ``body`` (digits), by ``biip``.

    ``biip`` is imported here, on first use: importing it builds its whole
    GS1 prefix table (about a tenth of a second), which every command-line
    start would otherwise pay whether or not it checks a GTIN.
    """
    from biip.checksums import gs1_standard_check_digit as check_digit

    return int(check_digit(body))


def validate_gtin(value: object, *, field: str = "gtin") -> str:
    """A GTIN-14 (14 digits, correct check digit); shorter GTINs are not accepted silently."""
    if not isinstance(value, str) or len(value) != 14 or not _DIGITS.match(value):
        raise InvalidInput(f"{field}: expected a GTIN-14 (exactly 14 digits), got {value!r}", code="invalid_gtin",
                           field=field)
    expected = gtin_check_digit(value[:13])
    if int(value[13]) != expected:
        raise InvalidInput(f"{field}: check digit of GTIN {value} is wrong (expected {value[:13]}{expected})",
                           code="invalid_gtin", field=field)
    return value


def validate_serial(value: object, *, field: str = "serial") -> str:
    """A GS1 AI 21 serial: 1–20 characters of the GS1 82-character set."""
    if not isinstance(value, str) or not 1 <= len(value) <= SERIAL_MAX:
        raise InvalidInput(f"{field}: expected 1–{SERIAL_MAX} characters (GS1 AI 21)", code="invalid_serial",
                           field=field)
    bad = sorted({c for c in value if c not in GS1_CHARSET_82})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidInput(f"{field}: character(s) {shown} are outside the GS1 82-character set allowed in AI 21 "
                           "(letters, digits and !\"%&'()*+,-./:;<=>?_)", code="invalid_serial", field=field)
    return value


def validate_lot(value: object, *, field: str = "lot") -> str:
    """A GS1 AI 10 batch/lot: 1–20 characters of the same 82-character set."""
    try:
        return validate_serial(value, field=field)
    except InvalidInput as exc:
        raise InvalidInput(exc.message.replace("AI 21", "AI 10"), code="invalid_field", field=field) from None


def validate_gln(value: object, *, field: str = "gln") -> str:
    """A GLN: 13 digits with a correct GS1 check digit."""
    if not isinstance(value, str) or len(value) != 13 or not _DIGITS.match(value):
        raise InvalidInput(f"{field}: expected a GLN (exactly 13 digits), got {value!r}", code="invalid_field",
                           field=field)
    expected = gs1_standard_check_digit(value[:12])
    if int(value[12]) != expected:
        raise InvalidInput(f"{field}: check digit of GLN {value} is wrong (expected {value[:12]}{expected})",
                           code="invalid_field", field=field)
    return value


def validate_prefix(value: object, *, field: str = "gs1_prefix") -> str:
    """A GS1 company prefix: 6–12 digits."""
    if not isinstance(value, str) or not _PREFIX.match(value):
        raise InvalidInput(f"{field}: expected a GS1 company prefix of 6–12 digits", code="invalid_field",
                           field=field)
    return value


def gtin_has_prefix(gtin: str, prefix: str) -> bool:
    """True if ``gtin`` (GTIN-14) was allocated under company prefix ``prefix``.

    A GTIN-14 is an indicator digit followed by the GTIN-13 that begins with
    the company prefix, so the prefix is matched from the second digit.
    """
    return gtin[1:].startswith(prefix)


def make_gtin(prefix: str, item_reference: str | int, *, indicator: int = 0) -> str:
    """Build a GTIN-14 from a company prefix and item reference, computing the check digit."""
    ref = str(item_reference).zfill(12 - len(prefix))
    body = f"{indicator}{prefix}{ref}"
    if len(body) != 13:
        raise InvalidInput(f"prefix {prefix} + item reference {item_reference} do not make a 13-digit GTIN body",
                           code="invalid_gtin", field="gtin")
    return body + str(gtin_check_digit(body))


def make_gln(prefix: str, location_reference: str | int) -> str:
    """Build a GLN from a company prefix and location reference, computing the check digit."""
    body = f"{prefix}{str(location_reference).zfill(12 - len(prefix))}"
    if len(body) != 12:
        raise InvalidInput(f"prefix {prefix} + location {location_reference} do not make a 12-digit GLN body",
                           code="invalid_field", field="gln")
    return body + str(gs1_standard_check_digit(body))


def new_serial(length: int = ISSUED_SERIAL_LENGTH) -> str:
    """A fresh random serial of ``length`` (≥ 16) characters of ``0-9A-Z``."""
    if not ISSUED_SERIAL_LENGTH <= length <= SERIAL_MAX:
        raise ValueError(f"issued serials have {ISSUED_SERIAL_LENGTH}–{SERIAL_MAX} characters")
    return "".join(secrets.choice(ISSUED_SERIAL_ALPHABET) for _ in range(length))


__all__ = [
    "GS1_CHARSET_82",
    "gtin_check_digit",
    "gtin_has_prefix",
    "make_gln",
    "make_gtin",
    "new_serial",
    "validate_gln",
    "validate_gtin",
    "validate_lot",
    "validate_prefix",
    "validate_serial",
]
