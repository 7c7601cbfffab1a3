"""GS1 identifiers: check digits, the AI 21 character set, issued serials."""

from __future__ import annotations

import pytest

from ledger.errors import InvalidInput
from ledger.gs1 import (
    GS1_CHARSET_82,
    gtin_check_digit,
    gtin_has_prefix,
    make_gln,
    make_gtin,
    new_serial,
    validate_gln,
    validate_gtin,
    validate_serial,
)


def test_known_gtin_check_digits() -> None:
    # GS1's own example GTIN-14 and a GTIN-13 padded to 14 digits.
    assert validate_gtin("10614141000415") == "10614141000415"
    assert gtin_check_digit("0400638133393") == 1
    assert validate_gtin("04006381333931") == "04006381333931"


@pytest.mark.parametrize("bad", ["10614141000416", "1061414100041", "1061414100041X", 10614141000415, ""])
def test_bad_gtins_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_gtin(bad)
    assert info.value.code == "invalid_gtin"


def test_wrong_check_digit_message_names_the_right_one() -> None:
    with pytest.raises(InvalidInput, match="expected 10614141000415"):
        validate_gtin("10614141000419")


def test_charset_has_82_characters_and_serials_follow_it() -> None:
    assert len(GS1_CHARSET_82) == 82
    assert validate_serial("AB-12/x_!%") == "AB-12/x_!%"
    for bad in ["", "A" * 21, "AB 12", "ÄB", "AB#1", "AB$", "AB@", "AB~", "AB\\"]:
        with pytest.raises(InvalidInput) as info:
            validate_serial(bad)
        assert info.value.code == "invalid_serial"


def test_gln_check_digit() -> None:
    gln = make_gln("6901234", 1)
    assert validate_gln(gln) == gln
    wrong = gln[:12] + str((int(gln[12]) + 1) % 10)
    with pytest.raises(InvalidInput):
        validate_gln(wrong)


def test_make_gtin_and_prefix_match() -> None:
    gtin = make_gtin("6901234", 42)
    assert validate_gtin(gtin) == gtin
    assert gtin_has_prefix(gtin, "6901234")
    assert not gtin_has_prefix(gtin, "6901235")


def test_issued_serials_are_random_uppercase_alphanumerics() -> None:
    serials = {new_serial() for _ in range(500)}
    assert len(serials) == 500
    for serial in serials:
        assert len(serial) == 16 and serial.isalnum() and serial == serial.upper()
        assert validate_serial(serial) == serial
    with pytest.raises(ValueError):
        new_serial(8)
