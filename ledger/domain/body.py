"""Small, strict readers for entry bodies: each names the field it rejects."""

from __future__ import annotations

import re
from typing import Any

from ledger.errors import InvalidInput

COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


def require_keys(body: dict[str, Any], required: set[str] | frozenset[str],
                 optional: set[str] | frozenset[str] = frozenset()) -> None:
    missing = sorted(required - body.keys())
    if missing:
        raise InvalidInput(f"body: missing field(s) {', '.join(missing)}", code="invalid_body", field=missing[0])
    extra = sorted(body.keys() - required - optional)
    if extra:
        raise InvalidInput(f"body: unknown field(s) {', '.join(extra)}", code="invalid_body", field=extra[0])


def get_str(body: dict[str, Any], name: str, *, max_len: int = 200, pattern: re.Pattern[str] | None = None,
            what: str = "a string") -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise InvalidInput(f"body.{name}: expected {what} of 1–{max_len} characters", code="invalid_body", field=name)
    if pattern is not None and not pattern.match(value):
        raise InvalidInput(f"body.{name}: expected {what}", code="invalid_body", field=name)
    return value


def get_opt_str(body: dict[str, Any], name: str, **kwargs: Any) -> str | None:
    if body.get(name) is None:
        return None
    return get_str(body, name, **kwargs)


def get_str_list(body: dict[str, Any], name: str, *, pattern: re.Pattern[str] | None = None, what: str = "strings",
                 max_items: int = 1000) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or len(value) > max_items:
        raise InvalidInput(f"body.{name}: expected a list of {what}", code="invalid_body", field=name)
    for item in value:
        if not isinstance(item, str) or (pattern is not None and not pattern.match(item)):
            raise InvalidInput(f"body.{name}: expected a list of {what}", code="invalid_body", field=name)
    if len(set(value)) != len(value):
        raise InvalidInput(f"body.{name}: duplicate items", code="invalid_body", field=name)
    return list(value)


def get_int(body: dict[str, Any], name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"body.{name}: expected an integer", code="invalid_body", field=name)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InvalidInput(f"body.{name}: expected an integer in [{minimum}, {maximum}]", code="invalid_body",
                           field=name)
    return value
