"""The event catalogue: one handler per event type.

A handler validates the body, applies the policy (raising
:class:`~ledger.errors.PolicyRejected` or :class:`~ledger.errors.InvalidInput`
for what must be *rejected*, calling :meth:`Context.flag` for what must be
*recorded and flagged*) and then writes its projection rows through
``ctx.state``. Handlers run inside the appending transaction, so a rejection
anywhere rolls everything back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import SQLModel

from ledger.entries import Entry
from ledger.errors import InvalidInput
from ledger.storage.state import StateStore


@dataclass(frozen=True)
class FlagNote:
    kind: str
    subject: str
    message: str
    org_id: str | None = None


@dataclass
class Context:
    """What a handler sees: the entry, its position in the log and the state store."""

    state: StateStore
    entry: Entry
    seq: int
    logged: str
    flags: list[FlagNote] = field(default_factory=list)

    @property
    def entry_id(self) -> str:
        return self.entry.entry_id

    def flag(self, kind: str, subject: str, message: str, org_id: str | None = None) -> None:
        note = FlagNote(kind=kind, subject=subject, message=message, org_id=org_id)
        self.flags.append(note)
        self.state.add_flag(seq=self.seq, entry_id=self.entry_id, kind=kind, subject=subject, org_id=org_id,
                            message=message)


Handler = Callable[[Context], None]
#: The primary-key look-ups a handler is about to make for an entry, as ``(table model, key)`` pairs, so a
#: batch can answer them all with one query per table first (:meth:`~ledger.storage.staging.Staging.prefetch`).
#: Only a hint: it must not raise on a bad body (the handler rejects that), and a look-up it misses is
#: simply answered by its own query.
Lookups = Callable[[Entry], Iterable[tuple[type[SQLModel], Any]]]

_HANDLERS: dict[str, Handler] = {}
_LOOKUPS: dict[str, list[Lookups]] = {}


def handles(event_type: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of ``event_type``."""

    def decorator(fn: Handler) -> Handler:
        if event_type in _HANDLERS:
            raise RuntimeError(f"event type {event_type} registered twice")
        _HANDLERS[event_type] = fn
        return fn

    return decorator


def looks_up(*event_types: str) -> Callable[[Lookups], Lookups]:
    """Register ``fn`` as (one of) the look-up hints of ``event_types``."""

    def decorator(fn: Lookups) -> Lookups:
        for event_type in event_types:
            _LOOKUPS.setdefault(event_type, []).append(fn)
        return fn

    return decorator


def lookups_of(entry: Entry) -> list[tuple[type[SQLModel], Any]]:
    """The look-up hints registered for ``entry``'s type."""
    found: list[tuple[type[SQLModel], Any]] = []
    for fn in _LOOKUPS.get(entry.type, ()):
        found.extend(fn(entry))
    return found


def get_handler(event_type: str) -> Handler:
    try:
        return _HANDLERS[event_type]
    except KeyError:
        known = ", ".join(sorted(_HANDLERS))
        raise InvalidInput(f"entry.type: unknown event type {event_type!r}; known types: {known}",
                           code="invalid_entry", field="type") from None


def registered_types() -> list[str]:
    return sorted(_HANDLERS)
