"""The EPCIS view of the log: every record with a supply-chain meaning as an EPCIS 2.0 event.

:class:`EventIndex` is a pure function of the records, fed in sequence
order. It keeps the org directory from the ``log.genesis``/``org.register``
records it has seen (so party GLNs are those registered *before* the event),
maps each record with :func:`ledger.epcis.mapping.entry_to_event`, and turns a
correction (``entry.correct``) into an EPCIS ``errorDeclaration`` on the
corrected event whose ``correctiveEventIDs`` name the correcting event. The
hash-based ``eventID`` ignores ``errorDeclaration``, so a corrected event keeps
its id.

The index grows incrementally (``feed`` only the new records), so a server can
keep one per process and answer queries without re-reading the log.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.entries import Record, parse_record
from ledger.epcis import vocab
from ledger.epcis.mapping import MapContext, entry_to_event

_ENTRY_ID = re.compile(r"^[0-9a-f]{64}$")
CORRECTS_KEYS = ("corrects",)


@dataclass
class IndexedEvent:
    seq: int
    entry_id: str
    event: dict[str, Any]


def corrected_entry_id(body: dict[str, Any]) -> str | None:
    """The entry id an ``entry.correct`` body points at."""
    for key in CORRECTS_KEYS:
        value = body.get(key)
        if isinstance(value, str) and _ENTRY_ID.match(value):
            return value
    return None


def _reason(body: dict[str, Any]) -> str:
    for key in ("reason_code", "reason", "error", "kind"):
        if body.get(key) == "did_not_occur":
            return "did_not_occur"
    return "incorrect_data"


@dataclass
class EventIndex:
    """All exported events of a log, in sequence order, with lookups by eventID and entry id."""

    resolver: str = vocab.GS1_RESOLVER
    size: int = 0
    events: list[IndexedEvent] = field(default_factory=list)
    by_event_id: dict[str, IndexedEvent] = field(default_factory=dict)
    by_entry_id: dict[str, IndexedEvent] = field(default_factory=dict)
    directory: vocab.Directory = field(default_factory=vocab.Directory)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def feed(self, records: Iterable[Record]) -> None:
        """Add records ``self.size, self.size + 1, ...`` (must be contiguous)."""
        ctx = MapContext(self.directory, self.resolver)
        for record in records:
            if record.seq != self.size:
                raise ValueError(f"records must be fed in order: expected seq {self.size}, got {record.seq}")
            self.size += 1
            entry = record.entry.data
            if entry["type"] in ("log.genesis", "org.register"):
                body = entry["body"]
                glns = body.get("glns") or []
                self.directory.add(str(body["org_id"]), [str(g) for g in glns])
                continue
            event = entry_to_event(entry, record.to_json()["sig"], ctx=ctx, logged=record.logged)
            if event is None:
                continue
            indexed = IndexedEvent(record.seq, record.entry.entry_id, event)
            self.events.append(indexed)
            self.by_event_id.setdefault(event["eventID"], indexed)
            self.by_entry_id[indexed.entry_id] = indexed
            if entry["type"] == "entry.correct":
                self._declare_error(entry, event)

    def _declare_error(self, entry: dict[str, Any], corrective: dict[str, Any]) -> None:
        target_id = corrected_entry_id(entry["body"])
        target = self.by_entry_id.get(target_id) if target_id else None
        if target is None:
            return
        declaration = target.event.setdefault("errorDeclaration", {
            "declarationTime": entry["time"], "reason": _reason(entry["body"]), "correctiveEventIDs": []})
        declaration["correctiveEventIDs"].append(corrective["eventID"])

    def feed_raw(self, rows: Iterable[tuple[int, bytes, bytes]]) -> None:
        self.feed(parse_record(raw) for _seq, raw, _leaf in rows)


def document(events: Iterable[dict[str, Any]], *, created: str | None = None) -> dict[str, Any]:
    """An ``EPCISDocument`` carrying ``events`` with partsledger's context."""
    return {
        "@context": list(vocab.DOCUMENT_CONTEXT),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "epcisBody": {"eventList": list(events)},
    }


def query_document(events: Iterable[dict[str, Any]], *, created: str | None = None,
                   query_name: str = "SimpleEventQuery") -> dict[str, Any]:
    """An ``EPCISQueryDocument`` (the REST query response body) carrying ``events``."""
    return {
        "@context": list(vocab.DOCUMENT_CONTEXT),
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "epcisBody": {"queryResults": {"queryName": query_name, "resultsBody": {"eventList": list(events)}}},
    }


def export_records(rows: Iterable[tuple[int, bytes, bytes]], *, resolver: str = vocab.GS1_RESOLVER,
                   ) -> Iterator[dict[str, Any]]:
    """All events of a log given as ``(seq, record bytes, leaf)`` rows from genesis (corrections included)."""
    index = EventIndex(resolver=resolver)
    index.feed_raw(rows)
    for item in index.events:
        yield item.event


__all__ = ["EventIndex", "IndexedEvent", "corrected_entry_id", "document", "export_records", "query_document"]
