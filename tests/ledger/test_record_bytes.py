"""Record bytes spliced around the entry's canonical bytes equal RFC 8785 over the whole record."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest
import rfc8785

from ledger.canonical import canonical_bytes
from ledger.entries import build_record, build_record_slow, make_signed_entry, parse_record, parse_record_json
from ledger.errors import InvalidInput
from ledger.keys import KeyPair

ALPHABET = string.ascii_letters + string.digits + " \"\\/\n\t\u00e9\u4e2d\u6587\U0001f697\u2028\x00\x7f<>&'"


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 6 if depth < 3 else 3)
    if kind == 0:
        return _text(rng)
    if kind == 1:
        return rng.choice([0, 1, -1, 2**53 - 1, -(2**53 - 1), rng.randint(-10**9, 10**9)])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.choice(["", "1e3", "0.10", "\u00fc", "a" * 40])
    if kind in (4, 5):
        return {_text(rng) or "k": _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def test_spliced_record_bytes_equal_rfc8785_over_many_random_entries() -> None:
    rng = random.Random(20261129)
    keys = [KeyPair.generate() for _ in range(4)]
    for i in range(1500):
        body = {_text(rng) or f"f{i}": _value(rng) for _ in range(rng.randint(0, 6))}
        time = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00" + \
            rng.choice(["Z", ".5Z", ".123456Z"])
        signed = make_signed_entry(rng.choice(keys), origin=rng.choice(["o.example/log", "日志/\u00e9"]),
                                   type="part.commission", org="org-" + str(i % 7) * 3, body=body, time=time)
        seq = rng.choice([0, 1, 9, 10, 2**31, 2**53 - 1, rng.randint(0, 10**12)])
        prev = bytes(rng.getrandbits(8) for _ in range(32))
        logged = rng.choice(["2026-11-29T00:00:00Z", "2026-11-29T12:34:56.789Z", time])
        spliced = build_record(seq, prev, logged, signed)
        reference = build_record_slow(seq, prev, logged, signed)
        assert spliced.canonical == reference.canonical, (i, body)
        assert spliced.canonical == rfc8785.dumps(json.loads(spliced.canonical))
        assert spliced.leaf_hash == reference.leaf_hash
        parsed, decoded = parse_record_json(spliced.canonical)
        assert parsed.canonical == spliced.canonical
        assert decoded == json.loads(spliced.canonical)
        # the entry bytes parse_record slices out of the record are exactly the entry's canonical bytes
        assert parsed.entry.canonical == signed.entry.canonical == canonical_bytes(decoded["entry"])
        assert parsed.entry.data == signed.entry.data and parsed.signed.signature == signed.signature
        assert parse_record(spliced.canonical) == parsed


def test_unusual_inputs_fall_back_to_full_canonicalisation() -> None:
    signed = make_signed_entry(KeyPair.generate(), origin="o.example/log", type="part.commission", org="org-aaa",
                               body={"x": "y"}, time="2026-11-29T00:00:00Z")
    for logged in ('2026-11-29T00:00:00Z"', "not a time", "2026-11-29T00:00:00\u00e9Z"):
        assert build_record(3, bytes(32), logged, signed).canonical == \
            build_record_slow(3, bytes(32), logged, signed).canonical


def test_parse_record_refuses_what_it_refused_before_taking_the_entry_slice() -> None:
    """Non-canonical record bytes are refused before any slice is taken, whatever the entry holds."""
    signed = make_signed_entry(KeyPair.generate(), origin="o.example/log", type="part.commission", org="org-aaa",
                               body={"x": "\u00e9", "y": [1, {"b": 2, "a": 1}]}, time="2026-11-29T00:00:00Z")
    raw = build_record(5, bytes(32), "2026-11-29T00:00:00Z", signed).canonical
    assert parse_record(raw).entry.canonical == signed.entry.canonical
    variants = [
        raw.replace(b'{"entry":{', b'{"entry": {', 1),          # whitespace inside the entry
        raw.replace(b'"a":1,"b":2', b'"b":2,"a":1', 1),         # entry keys out of order
        raw.replace("\u00e9".encode(), b"\\u00e9", 1),         # an escape JCS would not write
        raw[:-1] + b' }',                                      # whitespace after the members
    ]
    for variant in variants:
        assert variant != raw
        with pytest.raises(InvalidInput, match="canonical"):
            parse_record(variant)
