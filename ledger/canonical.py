"""Canonical bytes (SPEC §3.1): RFC 8785 JSON Canonicalization Scheme.

Everything partsledger hashes or signs goes through :func:`canonical_bytes`.
On top of RFC 8785 the ledger forbids floats (money and measurements are
integer minor units or decimal strings) and integers outside the IEEE-754
safe range, so that every implementation in every language reads the same
numbers back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import rfc8785

from ledger.errors import InvalidInput

MAX_SAFE_INTEGER = 2**53 - 1

JSONValue = Any


MAX_DEPTH = 64


def _check_str(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{path}: string is not valid Unicode (lone surrogate)", code="invalid_field",
                           field=path) from None


def _check(value: JSONValue, path: str, depth: int = 0, *, allow_floats: bool = False) -> None:
    if depth > MAX_DEPTH:
        raise InvalidInput(f"{path}: nested deeper than {MAX_DEPTH} levels", code="invalid_field", field=path)
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_str(value, path)
        return
    if isinstance(value, (bytes, bytearray)):
        raise InvalidInput(f"{path}: bytes are not a JSON value; use base64 strings", code="invalid_field",
                           field=path)
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise InvalidInput(f"{path}: integer {value} is outside ±(2^53−1)", code="invalid_field", field=path)
        return
    if isinstance(value, float):
        if allow_floats:
            return
        raise InvalidInput(
            f"{path}: floats are not allowed in signed content; use integers or decimal strings",
            code="invalid_field",
            field=path,
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{path}: object keys must be strings", code="invalid_field", field=path)
            _check_str(key, path)
            _check(item, f"{path}.{key}", depth + 1, allow_floats=allow_floats)
        return
    if isinstance(value, Sequence):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth + 1, allow_floats=allow_floats)
        return
    raise InvalidInput(f"{path}: {type(value).__name__} is not a JSON value", code="invalid_field", field=path)


def canonical_bytes(value: JSONValue) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises :class:`InvalidInput` for floats, unsafe integers and non-JSON values.
    """
    _check(value, "$")
    return rfc8785.dumps(value)


def parse_json(data: bytes | str, *, allow_floats: bool = False) -> JSONValue:
    """Parse JSON strictly: UTF-8 only, no NaN/Infinity, no duplicate keys, no lone surrogates,
    bounded nesting, and (unless ``allow_floats``, e.g. for EPCIS sensor values) no floats."""

    def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in pairs:
            if key in out:
                raise InvalidInput(f"duplicate JSON key {key!r}", code="invalid_json")
            out[key] = item
        return out

    def _no_constants(name: str) -> Any:
        raise InvalidInput(f"JSON constant {name} is not allowed", code="invalid_json")

    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            raise InvalidInput("JSON must be UTF-8 without a byte-order mark", code="invalid_json")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("JSON must be valid UTF-8", code="invalid_json") from None
    try:
        value = json.loads(data, object_pairs_hook=_no_dupes, parse_constant=_no_constants)
    except RecursionError:
        raise InvalidInput("JSON is nested too deeply", code="invalid_json") from None
    except ValueError as exc:
        raise InvalidInput(f"malformed JSON: {exc}", code="invalid_json") from None
    _check(value, "$", allow_floats=allow_floats)
    return value


__all__ = ["MAX_SAFE_INTEGER", "canonical_bytes", "parse_json"]
