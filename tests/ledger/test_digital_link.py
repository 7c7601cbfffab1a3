"""GS1 Digital Link URIs: what we emit parses with biip to the same part; bad input names the rule."""

from __future__ import annotations

import pytest
from biip import parse as biip_parse
from gs1 import compress_gs1_digital_link
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.digital_link import (
    CSET82,
    _compression_tables,
    build_uri,
    check_gtin,
    element_string,
    gtin_check_digit,
    parse_uri,
    sign_part_id,
    verify_part_sig,
)
from ledger.errors import InvalidInput, SignatureError
from ledger.keys import KeyPair

GTIN = "09506000134352"
BASE = "https://scan.partsledger.example"
KEY = KeyPair.from_seed(bytes(range(32)))

serials = st.text(alphabet=sorted(CSET82), min_size=1, max_size=20)
lots = st.none() | st.text(alphabet=sorted(CSET82), min_size=1, max_size=20)


def _biip_fields(uri: str) -> dict[str, str]:
    result = biip_parse(uri)
    assert result.gs1_digital_link_uri is not None, result.gs1_digital_link_uri_error
    return {es.ai.ai: es.value for es in result.gs1_digital_link_uri.element_strings}


@settings(max_examples=150, deadline=None)
@given(serial=serials, lot=lots)
def test_emitted_uri_parses_with_biip_to_the_same_part(serial: str, lot: str | None) -> None:
    sig = sign_part_id(KEY, GTIN, serial)
    uri = build_uri(BASE, GTIN, serial, lot=lot, sig=sig)
    fields = _biip_fields(uri)
    assert fields["01"] == GTIN
    assert fields["21"] == serial
    assert fields.get("10") == lot
    assert fields["8030"] == sig
    link = parse_uri(uri)
    assert (link.gtin, link.serial, link.lot, link.sig, link.compressed) == (GTIN, serial, lot, sig, False)
    verify_part_sig(KEY.public_key, link.gtin, link.serial, sig)


def test_uri_shape_is_the_uncompressed_form_of_spec_3_7() -> None:
    sig = sign_part_id(KEY, GTIN, "Q7K2M9X4P1R8T6W3")
    assert build_uri(BASE + "/", GTIN, "Q7K2M9X4P1R8T6W3", lot="L1", sig=sig) == (
        f"{BASE}/01/{GTIN}/21/Q7K2M9X4P1R8T6W3?10=L1&8030={sig}")
    assert build_uri(BASE, GTIN, "A/B", sig=sig) == f"{BASE}/01/{GTIN}/21/A%2FB?8030={sig}"
    assert element_string(GTIN, "A/B") == b"0109506000134352" + b"21A/B"


def test_signature_is_bound_to_key_gtin_serial_and_purpose() -> None:
    sig = sign_part_id(KEY, GTIN, "SER1")
    verify_part_sig(KEY.public_key, GTIN, "SER1", sig)
    with pytest.raises(SignatureError):
        verify_part_sig(KEY.public_key, GTIN, "SER2", sig)
    with pytest.raises(SignatureError):
        verify_part_sig(KeyPair.generate().public_key, GTIN, "SER1", sig)
    other_gtin = "0950600013436" + str(gtin_check_digit("0950600013436"))
    with pytest.raises(SignatureError):
        verify_part_sig(KEY.public_key, other_gtin, "SER1", sig)
    # the same bytes signed for another purpose are not a part-id signature
    from ledger.keys import b64url_encode

    entry_sig = b64url_encode(KEY.sign("entry", element_string(GTIN, "SER1")))
    with pytest.raises(SignatureError):
        verify_part_sig(KEY.public_key, GTIN, "SER1", entry_sig)
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    with pytest.raises(SignatureError):
        verify_part_sig(KEY.public_key, GTIN, "SER1", flipped)
    with pytest.raises(SignatureError):
        verify_part_sig(KEY.public_key, GTIN, "SER1", sig[:-2])


def test_wrong_check_digit_is_named() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_uri(f"{BASE}/01/09506000134353/21/ABC")
    assert info.value.code == "invalid_gtin"
    assert "check digit of GTIN 09506000134353 is wrong (expected 09506000134352)" in info.value.message
    with pytest.raises(InvalidInput) as info:
        check_gtin("9506000134352")
    assert info.value.code == "invalid_gtin"


@pytest.mark.parametrize("serial", ["A%C3%A9", "A%20B", "A~B", "A%23B", "%5B1%5D"])
def test_illegal_serial_character_is_named(serial: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_uri(f"{BASE}/01/{GTIN}/21/{serial}")
    assert info.value.code == "invalid_serial"
    assert "82-character set" in info.value.message


def test_too_long_serial_and_missing_parts() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_uri(f"{BASE}/01/{GTIN}/21/{'A' * 21}")
    assert info.value.code == "invalid_serial"
    for uri in (f"{BASE}/01/{GTIN}", "ftp://x/01/09506000134352/21/A", "not a uri", f"{BASE}/02/{GTIN}/21/A"):
        with pytest.raises(InvalidInput) as info:
            parse_uri(uri)
        assert info.value.code == "invalid_uri", uri


# gs1-compression mangles all-numeric values with leading zeros ("00" → "0"); our serials and
# lots always carry a letter, which is what this strategy generates (docs/scan.md says so).
_alnum = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-", min_size=0, max_size=19)
with_letter = st.builds(lambda a, b: a + "K" + b, _alnum, _alnum).filter(lambda s: len(s) <= 20)


@settings(max_examples=40, deadline=None)
@given(serial=with_letter, lot=st.none() | with_letter)
def test_compressed_uris_are_accepted(serial: str, lot: str | None) -> None:
    _compression_tables()
    sig = sign_part_id(KEY, GTIN, serial)
    full = build_uri(BASE, GTIN, serial, lot=lot, sig=sig)
    compressed = compress_gs1_digital_link(digital_link_uri=full, use_optimizations=False,
                                           compress_other_key_value_pairs=False)
    assert "/01/" not in compressed
    link = parse_uri(compressed)
    assert (link.gtin, link.serial, link.lot, link.sig, link.compressed) == (GTIN, serial, lot, sig, True)


def test_gs1_reference_compressed_uri_decodes() -> None:
    # The example from GS1's compression prototype: GTIN 9780345418913 only (no serial) → not a part.
    with pytest.raises(InvalidInput) as info:
        parse_uri("https://id.gs1.org/ARHKVAdpQg")
    assert info.value.code == "invalid_uri"
    assert "serial" in info.value.message


def test_compressed_junk_is_rejected_cleanly() -> None:
    for uri in ("https://x/ARFKk4XBoCDIW", "https://x/AAAAAAAAAAAAAAAAAAAAAAAA", "https://x/_-_-_-_-_-_-_-_-"):
        with pytest.raises(InvalidInput) as info:
            parse_uri(uri)
        assert info.value.code == "invalid_uri"
