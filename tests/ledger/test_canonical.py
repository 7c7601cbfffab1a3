"""RFC 8785 known answers for ledger.canonical (data in tests/data/rfc8785), and property tests that its fast
path (the standard library's C encoder) writes exactly what the reference ``rfc8785`` writes."""

from __future__ import annotations

import contextlib
import json
from http import HTTPStatus
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.canonical import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    _fast_bytes,
    canonical_bytes,
    canonical_bytes_reference,
    canonical_value,
    parse_canonical,
    parse_json,
)
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


# The fast path (json's C encoder) against the reference path (rfc8785) --------------------------------

# Every code point except lone surrogates: C0 controls, DEL, U+2028, BMP private use, astral planes.
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
ASCII_KEYS = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8)
# Keys that disagree between UTF-16 and code-point order: astral (surrogate pairs) beside U+E000-U+FFFF.
TRICKY_KEYS = st.one_of(ANY_TEXT, st.sampled_from(["\U0001f600", "\ufb33", "\ue000", "\uffff", "\U00010000",
                                                   "a\U0001f600", "a\ufb33", "\u20ac", "\u00f6"]))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER), ANY_TEXT,
                    st.sampled_from([0, -0, 1, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, "", "\x00", "\x1f", "\x7f",
                                     "\"\\/", "\b\f\n\r\t", "\u2028\u2029", "</script>"]))


def _json(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                         st.dictionaries(keys, inner, max_size=5)), max_leaves=25)


class _Text(str):
    pass


ANY_JSON = _json(TRICKY_KEYS)
ASCII_KEYED_JSON = _json(ASCII_KEYS)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(ANY_JSON)
def test_canonical_bytes_equal_rfc8785_on_random_json(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value) == canonical_bytes_reference(value)


@SETTINGS
@given(ASCII_KEYED_JSON)
def test_the_fast_path_is_taken_for_ascii_keys_and_equals_rfc8785(value: Any) -> None:
    fast = _fast_bytes(value)
    assert fast is not None  # ASCII keys and non-float scalars: the C encoder decides
    assert fast == rfc8785.dumps(value)


def test_the_fast_path_writes_every_code_point_as_rfc8785_does() -> None:
    """Every Unicode scalar value, in strings and as (non-ASCII keys take the reference path) ASCII-keyed
    members: 0x110000 code points in blocks of 2,048, so that rfc8785 runs a few hundred times, not a million."""
    block = 2048
    for start in range(0, 0x110000, block):
        text = "".join(chr(cp) for cp in range(start, start + block) if not 0xD800 <= cp <= 0xDFFF)
        value: dict[str, Any] = {"s": text, "chars": list(text[:64]), "": [text[-1:], {"k": text[:1]}]}
        fast = _fast_bytes(value)
        assert fast is not None and fast == rfc8785.dumps(value), hex(start)
    assert _fast_bytes(["\ud800"]) is None  # a lone surrogate: the reference path names it


@SETTINGS
@given(ANY_JSON)
def test_parse_canonical_accepts_exactly_the_canonical_bytes(value: Any) -> None:
    raw = rfc8785.dumps(value)
    assert parse_canonical(raw) == value
    assert parse_json(raw) == value
    for other in {json.dumps(value).encode(), json.dumps(value, sort_keys=True).encode(),
                  json.dumps(value, separators=(",", ":")).encode(),
                  json.dumps(value, separators=(",", ":"), sort_keys=True).encode(),  # \\u escapes for non-ASCII
                  json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode(),
                  b" " + raw, raw + b"\n"}:
        if other == raw:
            continue
        with pytest.raises(InvalidInput):
            parse_canonical(other)


@SETTINGS
@given(st.dictionaries(ASCII_KEYS, SCALARS, min_size=2, max_size=6))
def test_parse_canonical_refuses_reordered_keys(value: dict[str, Any]) -> None:
    raw = canonical_bytes(value)
    backwards = b"{" + b",".join(json.dumps(k, ensure_ascii=False).encode() + b":" + canonical_bytes(v)
                                 for k, v in sorted(value.items(), reverse=True)) + b"}"
    assert backwards != raw
    with pytest.raises(InvalidInput):
        parse_canonical(backwards)


@SETTINGS
@given(ANY_JSON)
def test_parse_json_agrees_with_the_standard_parser(value: Any) -> None:
    text = json.dumps(value, indent=1)
    assert parse_json(text) == json.loads(text)
    assert parse_json(text.encode("utf-8")) == json.loads(text)


def test_utf16_key_order_takes_the_reference_path() -> None:
    value = {"\ufb33": 1, "\U0001f600": 2}
    assert _fast_bytes(value) is None
    # RFC 8785 compares UTF-16 code units: U+1F600 is D83D DE00, before FB33; code-point order says otherwise.
    assert canonical_bytes(value) == '{"\U0001f600":2,"\ufb33":1}'.encode()
    assert json.dumps(value, sort_keys=True, ensure_ascii=False) == '{"\ufb33": 1, "\U0001f600": 2}'
    with pytest.raises(InvalidInput):
        parse_canonical('{"\ufb33":1,"\U0001f600":2}'.encode())
    assert parse_canonical(canonical_bytes(value)) == value


@pytest.mark.parametrize("vector", INTEGER_ONLY, ids=lambda v: v.name)
def test_vectors_on_both_paths(vector: CanonicalVector) -> None:
    value = json.loads(vector.input)
    assert canonical_bytes_reference(value) == vector.output
    fast = _fast_bytes(value)
    assert fast is None or fast == vector.output
    assert parse_canonical(vector.output) == value
    if vector.input != vector.output:
        with pytest.raises(InvalidInput):
            parse_canonical(vector.input)


def test_some_vectors_take_the_fast_path() -> None:
    assert {v.name for v in INTEGER_ONLY if _fast_bytes(json.loads(v.input)) is not None} >= {"arrays"}


@pytest.mark.parametrize("value", [
    {"n": 1.5}, [0.0], {"n": MAX_SAFE_INTEGER + 1}, [-(2**63)], {"k": "\ud800"}, ["a\udfff"], {1: "x"},
    {"b": b"bytes"}, {"t": (1, 2)}, {"e": HTTPStatus.OK}, [_Text("x")], {"é": 1}, {"k": {"\u20ac": 1}},
])
def test_unusual_values_leave_the_fast_path(value: Any) -> None:
    assert _fast_bytes(value) is None


@pytest.mark.parametrize("value", [{"n": 1.5}, [0.0], {"n": MAX_SAFE_INTEGER + 1}, {"k": "\ud800"}, {1: "x"},
                                   {"b": b"bytes"}])
def test_values_outside_the_ledger_rules_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput):
        canonical_bytes(value)


@pytest.mark.parametrize("text", ['"\\ud800"', '["a\\udfff"]', '{"\\ud83d": 1}', '{"k": {"\\uDC00": 1}}'])
def test_parse_json_refuses_lone_surrogate_escapes(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_json(text)
    assert "surrogate" in info.value.message


def test_parse_json_accepts_an_escaped_surrogate_pair() -> None:
    assert parse_json('"\\ud83d\\ude00"') == "\U0001f600"


def test_parse_json_refuses_a_lone_surrogate_in_str_input() -> None:
    with pytest.raises(InvalidInput):
        parse_json('["\ud800"]')


def test_depth_limit_is_the_same_on_both_paths() -> None:
    deep: Any = 0
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert canonical_bytes(deep) == rfc8785.dumps(deep)  # the scalar sits at depth MAX_DEPTH: allowed
    with pytest.raises(InvalidInput):
        canonical_bytes([deep])
    assert parse_json(json.dumps(deep)) == deep
    with pytest.raises(InvalidInput):
        parse_json(json.dumps([deep]))


@pytest.mark.parametrize("raw", [b'{"a":1,"a":1}', b'{"a":01}', b'{"a":1.0}', b'{"a":1e0}', b'{"a":-0}',
                                 b'{"a":"\\u0041"}', b'{"a":"\\/"}', b'{"a":"\\u001F"}', b'["\\u00e9"]',
                                 b'{"a":true }', b'\xef\xbb\xbf{}', b'{"b":1,"a":2}'])
def test_parse_canonical_refuses_non_canonical_spellings(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_canonical(raw)


@SETTINGS
@given(ANY_JSON)
def test_canonical_value_returns_the_value_of_canonical_bytes_or_defers(value: Any) -> None:
    raw = rfc8785.dumps(value)
    quick = canonical_value(raw)
    assert quick is None or (quick == value and parse_json(raw) == quick)
    if _fast_bytes(value) is not None:  # ASCII keys: the quick parse vouches for the bytes itself
        assert quick == value


@SETTINGS
@given(ANY_JSON)
def test_canonical_value_never_vouches_for_other_spellings(value: Any) -> None:
    raw = rfc8785.dumps(value)
    for other in {json.dumps(value).encode(), json.dumps(value, sort_keys=True).encode(),
                  json.dumps(value, separators=(",", ":"), sort_keys=True).encode(), b" " + raw, raw + b"\n"}:
        if other != raw:
            assert canonical_value(other) is None


@pytest.mark.parametrize("raw", [b'{"a":1,"a":1}', b'{"a":01}', b'{"a":1.0}', b'{"a":1.5}', b'{"a":1e0}', b'{"a":-0}',
                                 b'{"a":"\\u0041"}', b'{"a":"\\/"}', b'{"a":"\\u001F"}', b'["\\u00e9"]',
                                 b'{"a":true }', b'\xef\xbb\xbf{}', b'{"b":1,"a":2}', b'[9007199254740992]',
                                 b'[-9007199254740992]', b'[18446744073709551616]', b'["\\ud800"]', b'[NaN]',
                                 b'["\xff"]', b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), b"", b"{",
                                 b"1.5", b"-2.5", b"1e5", b"0.5", b'[1,2.5]', b'{"a":[0.5]}', b'{"a":-1E3}',
                                 b"9007199254740992", b'{"\xc3\xa9":1.5}', b'["\xc3\xa9",1.5]'])
def test_canonical_value_defers_whatever_the_strict_parser_would_refuse(raw: bytes) -> None:
    """Bytes that are not canonical, or that :func:`parse_json` refuses, are never vouched for (``None``):
    duplicates, floats, unsafe integers, escaped surrogates, constants, bad UTF-8, BOM, deep nesting."""
    assert canonical_value(raw) is None


@pytest.mark.parametrize("value", [{"a": "x:1.5"}, ["[2e3"], {"k": ",0.5"}, "1.5", 7, -9007199254740991, [],
                                   {"deep": [[[[1]]]]}, {"n": "M\u00fcnchen", "m": 1}, ["\u00e9", {"b": 2, "a": 1}]])
def test_canonical_value_takes_canonical_bytes_with_or_without_the_walk(value: Any) -> None:
    raw = rfc8785.dumps(value)
    assert canonical_value(raw) == value


def _reference_parse(text: str, allow_floats: bool) -> Any:
    """parse_json as a plain json.loads plus the full walk (what the quick path must agree with)."""
    from ledger.canonical import _check, _no_constants, _no_dupes

    value = json.loads(text, object_pairs_hook=_no_dupes, parse_constant=_no_constants)
    _check(value, "$", allow_floats=allow_floats)
    return value


NUMBERS = st.one_of(st.integers(-(2**60), 2**60), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 1.0, -0.0, 1e300]))
NUMERIC_JSON = st.recursive(st.one_of(NUMBERS, SCALARS), lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TRICKY_KEYS, inner, max_size=4)), max_leaves=20)


@SETTINGS
@given(NUMERIC_JSON, st.booleans())
def test_parse_json_quick_path_agrees_with_the_full_walk(value: Any, allow_floats: bool) -> None:
    text = json.dumps(value)
    outcomes = []
    for parse in (_reference_parse, lambda t, f: parse_json(t, allow_floats=f)):
        try:
            outcomes.append(("value", parse(text, allow_floats)))
        except InvalidInput as exc:
            outcomes.append(("refused", exc.message))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize(("text", "path"), [('{"a":{"b":1.5}}', "$.a.b"), ('{"a":[1,2,9007199254740992]}', "$.a[2]"),
                                            ('[{"x":-9007199254740992}]', "$[0].x")])
def test_parse_json_names_the_offending_number(text: str, path: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_json(text)
    assert info.value.message.startswith(path + ":")


def test_parse_json_floats_only_where_allowed() -> None:
    assert parse_json('{"t": 21.5}', allow_floats=True) == {"t": 21.5}
    with pytest.raises(InvalidInput):
        parse_json('{"t": 21.5}')


_FLOAT_FREE = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])),
                                                               inner, max_size=5),
    max_leaves=30)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_FLOAT_FREE)
def test_float_free_json_writes_exactly_what_response_json_writes(value: Any) -> None:
    """The verdict's fast JSON writer (orjson) gives Starlette's bytes for every float-free value: control
    characters, quotes, non-ASCII and line separators included, and integers past 64 bits (the slow way)."""
    from ledger.canonical import float_free_json, response_json

    assert float_free_json(value) == response_json(value)



def _strict(raw: bytes) -> Any:
    """What the strict path makes of ``raw``: the value if the bytes are canonical by the ledger's rules, else a
    marker."""
    try:
        value = parse_json(raw)
        return value if canonical_bytes(value) == raw else _REFUSED
    except InvalidInput:
        return _REFUSED


_REFUSED = object()


@SETTINGS
@given(NUMERIC_JSON)
def test_canonical_value_never_vouches_for_what_the_strict_path_refuses(value: Any) -> None:
    """Floats (in any spelling) and integers past ±(2^53−1) among random JSON: whatever the quick parse
    returns, the strict parse and the canonical check return too; where they refuse, it returns ``None``."""
    spellings = {json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()}
    with contextlib.suppress(rfc8785.IntegerDomainError):
        spellings.add(rfc8785.dumps(value))
    for raw in spellings:
        quick, strict = canonical_value(raw), _strict(raw)
        assert quick is None or (strict is not _REFUSED and quick == strict), raw
