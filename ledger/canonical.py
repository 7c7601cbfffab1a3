"""Canonical bytes (SPEC §3.1): RFC 8785 JSON Canonicalization Scheme.

Everything partsledger hashes or signs goes through :func:`canonical_bytes`.
On top of RFC 8785 the ledger forbids floats (money and measurements are
integer minor units or decimal strings) and integers outside the IEEE-754
safe range, so that every implementation in every language reads the same
numbers back.

**Fast path.** Within those rules, RFC 8785 and the standard library's
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
write the same bytes for any value whose object keys are all ASCII: both
escape exactly ``"``, ``\\`` and U+0000–U+001F (``\\b \\t \\n \\f \\r`` short,
the rest as lowercase ``\\u00xx``) and write everything else as UTF-8, and
integers are plain decimals. They differ only in key order, which RFC 8785
takes over UTF-16 code units and ``sort_keys`` over code points — the same
order for ASCII keys. ``orjson.dumps`` with ``OPT_SORT_KEYS`` writes those
same bytes, several times faster (tested for every code point). So
:func:`canonical_bytes` first walks the value once (:func:`_plain`): exact
``dict``/``list``/``str``/``int``/``bool``/``None``, ASCII keys, safe
integers, bounded depth. Such values go through ``orjson``; anything else —
a float, a non-ASCII key, a subclass, a lone surrogate — takes the reference
path (``rfc8785``), which also produces the error messages.
``tests/ledger/test_canonical.py`` checks both paths agree on random JSON and
on the RFC 8785 vectors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import rfc8785

from ledger.errors import InvalidInput

MAX_SAFE_INTEGER = 2**53 - 1

JSONValue = Any


MAX_DEPTH = 64


def float_free_json(value: Any) -> bytes:
    """:func:`response_json` of a value built of strings, integers, booleans, ``None``, lists and dicts with
    string keys only (no floats, which it would not reject as NaN), in a few microseconds: a cold verdict's
    document went through :func:`response_json` in about a tenth of the scan's time. Anything ``orjson`` cannot
    write (an integer past 64 bits, a key that is not a string) goes the slow way."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return response_json(value)


def response_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, byte for byte what Starlette's ``JSONResponse`` renders: for answers built in the
    ledger (a cached verdict, a receipt from the append process) that the API sends as they are. Not
    canonical: keys keep their order."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


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


def _plain(value: JSONValue, depth: int) -> bool:
    """True when ``value`` certainly passes :func:`_check` and the C encoder writes its RFC 8785 form.

    Exact types only (``dict``, ``list``, ``str``, ``int`` within ±(2^53−1), ``bool``, ``None``), object
    keys ASCII, containers nested less than :data:`MAX_DEPTH`. ``False`` means "take the reference path",
    never "invalid": the reference path decides. Lone surrogates pass here and fail when encoding.
    """
    kind = type(value)
    if kind is dict or kind is list:
        if depth >= MAX_DEPTH:
            return False
        if kind is dict and not all(type(key) is str and key.isascii() for key in value):
            return False
        for item in (value.values() if kind is dict else value):
            item_kind = type(item)
            if item_kind is str or item_kind is bool or item is None:
                continue
            if item_kind is int:
                if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    continue
                return False
            if not _plain(item, depth + 1):
                return False
        return True
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    return False


def _fast_bytes(value: JSONValue) -> bytes | None:
    """The canonical bytes by the fast path, or ``None`` where only the reference path may decide."""
    if not _plain(value, 0):
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # a lone surrogate: the reference path names it
        return None


def canonical_bytes(value: JSONValue) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises :class:`InvalidInput` for floats, unsafe integers and non-JSON values.
    """
    fast = _fast_bytes(value)
    if fast is not None:
        return fast
    return canonical_bytes_reference(value)


def canonical_bytes_reference(value: JSONValue) -> bytes:
    """:func:`canonical_bytes` by the reference implementation alone (``rfc8785``), never the fast path."""
    _check(value, "$")
    return rfc8785.dumps(value)


def canonical_value(data: bytes) -> JSONValue | None:
    """The value of ``data`` if ``data`` is, byte for byte, the fast path's canonical bytes of it; else ``None``
    (which says nothing: such bytes may still be canonical, or be wrong in a way :func:`parse_json` names).

    ``orjson`` parses, and the value's canonical bytes are compared with ``data``. Equal bytes leave nothing
    for the strict parser to refuse: a duplicate key would have been dropped (shorter bytes), and the fast
    path writes no BOM, constant, float, unsafe integer, escaped surrogate or deeper nesting than allowed.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if _fast_bytes(value) == data else None


def parse_canonical(data: bytes) -> JSONValue:
    """Parse stored bytes that must be exactly canonical (:func:`parse_json` rules, then RFC 8785 form).

    Raises :class:`InvalidInput` (code ``invalid_json``, or ``integrity`` for well-formed JSON in any
    other form: other key order, whitespace, escapes or number spelling).
    """
    quick = canonical_value(data)
    if quick is not None:
        return quick
    value = parse_json(data)
    if canonical_bytes(value) != data:
        raise InvalidInput("bytes are not in RFC 8785 canonical form", code="integrity")
    return value


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _item in pairs:
            if key in seen:
                raise InvalidInput(f"duplicate JSON key {key!r}", code="invalid_json")
            seen.add(key)
    return out


def _no_constants(name: str) -> Any:
    raise InvalidInput(f"JSON constant {name} is not allowed", code="invalid_json")


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Unsure(Exception):
    """Raised inside the decoder's hooks: the quick parse cannot vouch for this document."""


def _safe_int(text: str) -> int:
    value = int(text)
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value
    raise _Unsure


def _no_float(_text: str) -> float:
    raise _Unsure


# Built once: ``json.loads`` with hooks would build a decoder per call.
_STRICT = json.JSONDecoder(object_pairs_hook=_no_dupes, parse_constant=_no_constants)
_QUICK = json.JSONDecoder(object_pairs_hook=_no_dupes, parse_constant=_no_constants, parse_int=_safe_int,
                          parse_float=_no_float)
_QUICK_FLOATS = json.JSONDecoder(object_pairs_hook=_no_dupes, parse_constant=_no_constants, parse_int=_safe_int)


def parse_json(data: bytes | str, *, allow_floats: bool = False) -> JSONValue:
    """Parse JSON strictly: UTF-8 only, no NaN/Infinity, no duplicate keys, no lone surrogates,
    bounded nesting, and (unless ``allow_floats``, e.g. for EPCIS sensor values) no floats.

    The decoder's hooks see every number, so a document with no float (where refused), no unsafe
    integer, no ``\\uD800``-``\\uDFFF`` escape and fewer brackets than :data:`MAX_DEPTH` needs no second
    walk; any other document is parsed again and walked by :func:`_check`, which names the offending path.
    """
    text_checked = False  # True once ``data`` is known to hold no lone surrogate itself
    if isinstance(data, bytes):
        text_checked = True  # strict UTF-8 decoding never yields a surrogate
        if data.startswith(b"\xef\xbb\xbf"):
            raise InvalidInput("JSON must be UTF-8 without a byte-order mark", code="invalid_json")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("JSON must be valid UTF-8", code="invalid_json") from None
    quick = (data.count("{") + data.count("[") <= MAX_DEPTH and "\\ud" not in data and "\\uD" not in data
             and (text_checked or _encodes(data)))
    try:
        if quick:
            try:
                return (_QUICK_FLOATS if allow_floats else _QUICK).decode(data)
            except _Unsure:
                pass
        value = _STRICT.decode(data)
    except RecursionError:
        raise InvalidInput("JSON is nested too deeply", code="invalid_json") from None
    except ValueError as exc:
        raise InvalidInput(f"malformed JSON: {exc}", code="invalid_json") from None
    _check(value, "$", allow_floats=allow_floats)
    return value


__all__ = [
    "MAX_SAFE_INTEGER",
    "canonical_bytes",
    "canonical_bytes_reference",
    "canonical_value",
    "float_free_json",
    "parse_canonical",
    "parse_json",
    "response_json",
]
