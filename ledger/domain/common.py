"""What every domain handler shares: part references, vehicles, documents, flags and role checks."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from sqlmodel import SQLModel

from ledger.domain import registry
from ledger.domain.body import get_str
from ledger.domain.registry import Context, Handler
from ledger.entries import Entry
from ledger.errors import InvalidInput, NotFound, PolicyRejected
from ledger.gs1 import gtin_has_prefix, validate_gtin, validate_serial
from ledger.storage.domain_repo import DomainRepo
from ledger.storage.domain_tables import Org
from ledger.storage.parts_tables import EntryRef, Part, PartEvent
from ledger.storage.state import StateStore

#: Part categories a grant can be scoped to (SPEC §4.2).
CATEGORIES = ("hv_battery", "lv_battery", "brakes", "adas", "powertrain", "electronics", "body", "suspension",
              "thermal", "charging", "other")
BATTERY_CATEGORIES = frozenset({"hv_battery", "lv_battery"})
#: Workshop activities a grant can cover.
ACTIVITIES = ("install", "remove", "repair", "inspect", "warranty_claim", "battery_diagnosis", "battery_dismantling")
#: Vehicle pseudonyms as made by :mod:`ledger.privacy`: never a VIN.
VEHICLE_RE = re.compile(r"^veh-[a-z2-7]{52}$")
DOC_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
#: Org kinds that can hold parts (custody).
HOLDER_KINDS = frozenset({"oem", "supplier", "workshop", "recycler", "test_lab"})


def handles(event_type: str) -> Callable[[Handler], Handler]:
    """Register a domain handler that also indexes its entry (see :class:`EntryRef`).

    The index row is written after the handler succeeds, in the same
    transaction, so a rejected entry leaves no trace.
    """

    def decorator(fn: Handler) -> Handler:
        @functools.wraps(fn)
        def run(ctx: Context) -> None:
            fn(ctx)
            body = ctx.entry.body
            gtin, serial = body.get("gtin"), body.get("serial")
            repo(ctx).insert(EntryRef, entry_id=ctx.entry_id, seq=ctx.seq, type=ctx.entry.type,
                             org_id=ctx.entry.org, kid=ctx.entry.kid, logged=ctx.logged,
                             gtin=gtin if isinstance(gtin, str) and len(gtin) == 14 else None,
                             serial=serial if isinstance(serial, str) and len(serial) <= 20 else None)

        registry.handles(event_type)(run)
        registry.looks_up(event_type)(_part_lookup)
        return fn

    return decorator


def _part_lookup(entry: Entry) -> list[tuple[type[SQLModel], Any]]:
    """The part an entry names in ``gtin``/``serial`` (most part events look it up)."""
    gtin, serial = entry.body.get("gtin"), entry.body.get("serial")
    if isinstance(gtin, str) and isinstance(serial, str):
        return [(Part, (gtin, serial))]
    return []


def repo(ctx: Context) -> DomainRepo:
    return ctx.state.repo


def subject(gtin: str, serial: str) -> str:
    """The flag subject naming a part."""
    return f"part:{gtin}:{serial}"


def part_key(gtin: str, serial: str) -> str:
    return f"{gtin}/{serial}"


def read_part_ref(body: dict[str, Any], gtin_field: str = "gtin", serial_field: str = "serial") -> tuple[str, str]:
    return (validate_gtin(body.get(gtin_field), field=f"body.{gtin_field}"),
            validate_serial(body.get(serial_field), field=f"body.{serial_field}"))


def require_part(ctx: Context, gtin: str, serial: str) -> Part:
    part = repo(ctx).get_part(gtin, serial)
    if part is None:
        raise NotFound(f"part {gtin}/{serial} was never commissioned", code="unknown_part", field="serial")
    return part


def read_vehicle(body: dict[str, Any], name: str = "vehicle") -> str:
    value = body.get(name)
    if not isinstance(value, str) or not VEHICLE_RE.match(value):
        raise InvalidInput(f"body.{name}: expected a vehicle pseudonym 'veh-<52 base32 chars>' from "
                           "POST /v1/vehicles/pseudonym — never a VIN", code="invalid_body", field=name)
    return value


def read_documents(body: dict[str, Any], name: str = "documents") -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or len(value) > 50 or not all(
            isinstance(v, str) and DOC_HASH_RE.match(v) for v in value):
        raise InvalidInput(f"body.{name}: expected up to 50 SHA-256 hex hashes of documents in the off-log store",
                           code="invalid_body", field=name)
    if len(set(value)) != len(value):
        raise InvalidInput(f"body.{name}: duplicate document hashes", code="invalid_body", field=name)
    return list(value)


def read_code(body: dict[str, Any], name: str) -> str:
    return get_str(body, name, max_len=32, pattern=CODE_RE, what="a code (letters, digits, _ . -)")


def read_id(body: dict[str, Any], name: str) -> str:
    return get_str(body, name, max_len=64, pattern=ID_RE, what="an id (letters, digits, _ . : -)")


def actor(ctx: Context) -> Org:
    org = ctx.state.get_org(ctx.entry.org)
    if org is None:  # admission already checked this; replay of a foreign log may not have
        raise NotFound(f"org {ctx.entry.org} is not registered", code="unknown_org", field="org")
    return org


def require_kind(ctx: Context, *kinds: str) -> Org:
    """The acting org, which must be of one of ``kinds`` (else ``role_forbidden``)."""
    org = actor(ctx)
    if org.kind not in kinds:
        raise PolicyRejected(f"{ctx.entry.type} may be written by {' or '.join(kinds)} orgs, not by {org.kind} "
                             f"{org.org_id}", code="role_forbidden", field="org")
    return org


def require_org(ctx: Context, org_id: str, field: str) -> Org:
    org = ctx.state.get_org(org_id)
    if org is None:
        raise NotFound(f"body.{field}: org {org_id} is not registered", code="unknown_org", field=field)
    return org


def prefix_owner(ctx: Context, gtin: str) -> Org | None:
    """The OEM whose GS1 company prefix issued ``gtin`` (the brand owner)."""
    return prefix_owner_in(ctx.state, gtin)


def prefix_owner_in(state: StateStore, gtin: str) -> Org | None:
    """:func:`prefix_owner` over a state store (for queries outside a handler); the longest prefix wins."""
    owners = [o for o in state.list_orgs(kind="oem", limit=100_000)
              if any(gtin_has_prefix(gtin, p) for p in o.gs1_prefixes)]
    owners.sort(key=lambda o: max(len(p) for p in o.gs1_prefixes if gtin_has_prefix(gtin, p)), reverse=True)
    return owners[0] if owners else None


def flag(ctx: Context, part: Part, kind: str, message: str) -> None:
    """Record a flag on ``part``, raised for the OEM owning its brand (its alert queue)."""
    ctx.flag(kind, subject(part.gtin, part.serial), message, org_id=part.brand_owner)


def record_event(ctx: Context, part: Part, *, authorization: str | None = None, grant_id: str | None = None) -> None:
    """Append this record to the part's history and stamp the part as changed at this seq."""
    part.last_seq = ctx.seq
    r = repo(ctx)
    r.save(part)
    r.insert(PartEvent, seq=ctx.seq, gtin=part.gtin, serial=part.serial, type=ctx.entry.type,
             org_id=ctx.entry.org, logged=ctx.logged, state_after=part.state, authorization=authorization,
             grant_id=grant_id)


__all__ = [
    "ACTIVITIES",
    "BATTERY_CATEGORIES",
    "CATEGORIES",
    "HOLDER_KINDS",
    "actor",
    "flag",
    "handles",
    "part_key",
    "prefix_owner",
    "prefix_owner_in",
    "read_code",
    "read_documents",
    "read_id",
    "read_part_ref",
    "read_vehicle",
    "record_event",
    "repo",
    "require_kind",
    "require_org",
    "require_part",
    "subject",
]
