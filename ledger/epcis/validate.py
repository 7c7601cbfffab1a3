"""Validating EPCIS 2.0 documents against GS1's official JSON Schema.

The schema is *not* shipped with partsledger: it is read from a path the
caller gives, or from ``PARTSLEDGER_EPCIS_SCHEMA``, or from ``epcis/`` under
``PARTSLEDGER_STANDARDS``, or — in a development checkout — from
``shared/standards/epcis/EPCIS-JSON-Schema.json`` beside the repository. When none exists, :func:`load_validator` raises
:class:`SchemaUnavailable` and the capture endpoint refuses documents with a
clear "validation unavailable" problem rather than letting unvalidated input in.

Formats are checked (``Draft7Validator.FORMAT_CHECKER``): ``uri`` needs the
``rfc3987`` package and ``date-time`` needs ``rfc3339-validator``; without them
jsonschema silently accepts any string, so :func:`load_validator` refuses to
build a validator that would not check them.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_ENV = "PARTSLEDGER_EPCIS_SCHEMA"
STANDARDS_ENV = "PARTSLEDGER_STANDARDS"  # the folder holding epcis/ and tlog/ (GS1 and RFC 6962 files)
SCHEMA_FILE = "EPCIS-JSON-Schema.json"


class SchemaUnavailable(RuntimeError):
    """No EPCIS schema could be found or loaded; validation cannot be done."""


def standards_root() -> Path:
    """``$PARTSLEDGER_STANDARDS`` if set, else ``<parent of the repository>/shared/standards`` (the
    development and CI layout)."""
    configured = os.environ.get(STANDARDS_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared" / "standards"


def standards_dir() -> Path:
    """The official EPCIS files: ``standards_root() / "epcis"``."""
    return standards_root() / "epcis"


def default_schema_path() -> Path:
    """``$PARTSLEDGER_EPCIS_SCHEMA`` if set, else the schema in :func:`standards_dir`."""
    configured = os.environ.get(SCHEMA_ENV)
    return Path(configured) if configured else standards_dir() / SCHEMA_FILE


@dataclass(frozen=True)
class SchemaProblem:
    """One way a document violates the schema: where (a JSON pointer) and what."""

    pointer: str
    message: str
    event_index: int | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pointer": self.pointer, "message": self.message}
        if self.event_index is not None:
            out["event_index"] = self.event_index
        return out


def _pointer(path: Any) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else ""


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _leaf(error: ValidationError) -> ValidationError:
    """The most specific cause of an ``anyOf``/``oneOf`` failure, ranked as jsonschema's ``best_match`` does."""
    return best_match([error]) or error


def _describe(error: ValidationError) -> str:
    """A one-line message that names the value briefly instead of dumping a whole event."""
    leaf = _leaf(error)
    where = _pointer(leaf.absolute_path) or "document"
    validator = leaf.validator
    if validator == "required" or validator == "additionalProperties":
        return f"{where}: {leaf.message}"
    if validator == "format":
        return f"{where}: {_short(leaf.instance)} is not a valid {leaf.validator_value}"
    if validator == "enum":
        allowed = ", ".join(str(v) for v in list(leaf.validator_value)[:12])
        return f"{where}: {_short(leaf.instance)} is not one of {allowed}"
    if validator == "pattern":
        return f"{where}: {_short(leaf.instance)} does not match {leaf.validator_value}"
    if validator == "type":
        return f"{where}: {_short(leaf.instance)} is not of type {leaf.validator_value}"
    if validator == "propertyNames":
        return f"{where}: property name {_short(leaf.instance)} is not allowed here"
    if validator in {"anyOf", "oneOf", "allOf", "not"}:
        return f"{where}: {_short(leaf.instance)} matches none of the allowed forms"
    message = leaf.message
    if len(message) > 200:
        message = message.replace(repr(leaf.instance), _short(leaf.instance))[:200]
    return f"{where}: {message}"


class EpcisValidator:
    """The official EPCIS 2.0 JSON Schema (Draft 7) with formats checked."""

    def __init__(self, schema: dict[str, Any], *, source: str = "<schema>") -> None:
        Draft7Validator.check_schema(schema)
        self.source = source
        self._validator = Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)

    def iter_problems(self, document: Any) -> Iterator[SchemaProblem]:
        for error in sorted(self._validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]):
            path = list(error.absolute_path)
            index = path[2] if len(path) >= 3 and path[:2] == ["epcisBody", "eventList"] else None
            leaf_path = list(_leaf(error).absolute_path)
            if index is None and len(leaf_path) >= 3 and leaf_path[:2] == ["epcisBody", "eventList"]:
                index = leaf_path[2]
            yield SchemaProblem(pointer=_pointer(leaf_path), message=_describe(error),
                                event_index=index if isinstance(index, int) else None)

    def problems(self, document: Any) -> list[SchemaProblem]:
        return list(self.iter_problems(document))

    def is_valid(self, document: Any) -> bool:
        return bool(self._validator.is_valid(document))


def _formats_checked() -> list[str]:
    missing = []
    checkers = Draft7Validator.FORMAT_CHECKER.checkers
    if "uri" not in checkers:
        missing.append("uri (install rfc3987)")
    if "date-time" not in checkers:
        missing.append("date-time (install rfc3339-validator)")
    return missing


def load_validator(path: Path | None = None) -> EpcisValidator:
    """Load the schema at ``path`` (default :func:`default_schema_path`); raise :class:`SchemaUnavailable`."""
    target = path or default_schema_path()
    missing = _formats_checked()
    if missing:
        raise SchemaUnavailable(f"EPCIS validation would not check formats: {', '.join(missing)}")
    try:
        schema = json.loads(target.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaUnavailable(
            f"EPCIS JSON Schema not readable at {target} ({exc.strerror}); set {SCHEMA_ENV} to its path"
        ) from None
    except ValueError:
        raise SchemaUnavailable(f"EPCIS JSON Schema at {target} is not JSON") from None
    if not isinstance(schema, dict):
        raise SchemaUnavailable(f"EPCIS JSON Schema at {target} is not a JSON object")
    return EpcisValidator(schema, source=str(target))


@functools.lru_cache(maxsize=4)
def cached_validator(path: str) -> EpcisValidator:
    """One validator per schema path per process (building one parses a 55 kB schema)."""
    return load_validator(Path(path))


__all__ = [
    "SCHEMA_ENV",
    "EpcisValidator",
    "SchemaProblem",
    "SchemaUnavailable",
    "cached_validator",
    "default_schema_path",
    "load_validator",
    "standards_dir",
]
