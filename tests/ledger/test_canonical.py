"""RFC 8785 known answers for ledger.canonical (data in tests/data/rfc8785)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.canonical import MAX_SAFE_INTEGER, canonical_bytes, parse_json
from ledger.errors import InvalidInput
from tests.vectors import DATA, CanonicalVector, rfc8785_vectors

VECTORS = rfc8785_vectors()


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False


INTEGER_ONLY = [v for v in VECTORS if not _has_float(json.loads(v.input))]
WITH_FLOATS = [v for v in VECTORS if _has_float(json.loads(v.input))]


def test_the_vector_set_is_complete() -> None:
    names = {v.name for v in VECTORS}
    assert {"arrays", "french", "structures", "unicode", "values", "weird", "rfc8785-3.2.3-sorting"} <= names
    assert {v.name for v in WITH_FLOATS} == {"structures", "values"}


@pytest.mark.parametrize("vector", INTEGER_ONLY, ids=lambda v: v.name)
def test_canonical_bytes_match_known_answer(vector: CanonicalVector) -> None:
    assert canonical_bytes(json.loads(vector.input)) == vector.output


@pytest.mark.parametrize("vector", INTEGER_ONLY, ids=lambda v: v.name)
def test_parse_json_then_canonical_bytes_match_known_answer(vector: CanonicalVector) -> None:
    assert canonical_bytes(parse_json(vector.input)) == vector.output


@pytest.mark.parametrize("vector", INTEGER_ONLY, ids=lambda v: v.name)
def test_canonical_bytes_are_a_fixed_point(vector: CanonicalVector) -> None:
    assert canonical_bytes(parse_json(vector.output)) == vector.output


@pytest.mark.parametrize("vector", WITH_FLOATS, ids=lambda v: v.name)
def test_vectors_with_floats_are_rejected(vector: CanonicalVector) -> None:
    with pytest.raises(InvalidInput) as info:
        canonical_bytes(json.loads(vector.input))
    assert "float" in info.value.message


def test_outhex_matches_simple_string() -> None:
    expected = bytes.fromhex((DATA / "rfc8785" / "outhex" / "simpleString.txt").read_text())
    assert canonical_bytes(json.loads((DATA / "rfc8785" / "input" / "simpleString.json").read_bytes())) == expected


def test_section_3_2_3_property_order() -> None:
    vector = next(v for v in VECTORS if v.name == "rfc8785-3.2.3-sorting")
    out = canonical_bytes(json.loads(vector.input)).decode("utf-8")
    order = [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]
    positions = [out.index(f'"{value}"') for value in order]
    assert positions == sorted(positions)


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0])
def test_safe_integers_are_accepted(value: int) -> None:
    assert canonical_bytes({"n": value}) == b'{"n":' + str(value).encode() + b"}"


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 2**64])
def test_unsafe_integers_are_rejected(value: int) -> None:
    with pytest.raises(InvalidInput):
        canonical_bytes({"n": [value]})


def test_parse_json_rejects_duplicate_keys() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_json('{"a": 1, "b": 2, "a": 3}')
    assert info.value.code == "invalid_json"


def test_parse_json_rejects_nested_duplicate_keys() -> None:
    with pytest.raises(InvalidInput):
        parse_json(b'{"outer": {"k": true, "k": false}}')


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"x": -Infinity}'])
def test_parse_json_rejects_nan_and_infinity(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_json(text)
    assert info.value.code == "invalid_json"


@pytest.mark.parametrize("data", [b"{", b"\xff\xfe", b'{"a":1} trailing'])
def test_parse_json_rejects_malformed_input(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_json(data)
