"""EPCIS capture: an EPCISDocument becomes native entries, appended through the same policy.

How signatures travel (see docs/epcis.md): every captured event carries a
``pl:signedEntry`` block — the actor's org id, key id, nonce and Ed25519
signature. The server maps the event back to the native entry
(:func:`ledger.epcis.mapping.event_to_native`): ``{"v": 1, "origin": <this
log>, "type", "org", "kid", "time": eventTime, "nonce", "body"}`` and checks
that signature over its RFC 8785 bytes exactly as for ``POST /v1/entries``.
So the log only ever holds entries signed by a registered key of the actor,
and each passes the same policy handlers; the server never signs for anyone.
:func:`sign_document` is the client side: it fills the blocks in.

The whole document is appended in one transaction (GS1 ``rollback``): if any
event fails — schema, our stricter rules, signature or policy — nothing is
appended and :class:`CaptureRejected` lists an error per event.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.entries import SignedEntry, parse_signed_entry, validate_entry
from ledger.epcis import vocab
from ledger.epcis.event_hash import context_prefixes, event_hash
from ledger.epcis.mapping import SIGNED_ENTRY, MapContext, entry_to_event, event_to_native
from ledger.epcis.validate import EpcisValidator
from ledger.errors import InvalidInput, LedgerError
from ledger.keys import KeyPair, b64encode
from ledger.log import BatchRejected, Ledger, Receipt

DEFAULT_MAX_EVENTS = 1000


@dataclass(frozen=True)
class EventError:
    """Why one event of a capture document was refused (``index`` is ``None`` for the document itself)."""

    index: int | None
    code: str
    message: str
    pointer: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "code": self.code, "detail": self.message}
        if self.pointer is not None:
            out["pointer"] = self.pointer
        return out


class CaptureRejected(InvalidInput):
    """A capture document was refused; ``errors`` says what is wrong with which event. Nothing was appended."""

    def __init__(self, errors: Sequence[EventError], *, code: str = "invalid_epcis", total: int | None = None,
                 cause: LedgerError | None = None) -> None:
        first = errors[0]
        where = "document" if first.index is None else f"event {first.index}"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        super().__init__(f"EPCIS capture refused, nothing appended: {where}: {first.message}{more}",
                         code=code,  # type: ignore[arg-type]
                         field=first.pointer, details={"errors": [e.to_json() for e in errors]})
        self.errors = list(errors)
        self.total = total
        self.cause = cause  # the policy/signature error that stopped the append, if that is what happened


def _document_rules(document: Any, max_events: int) -> list[EventError]:
    """Our rules beyond the schema for the document as a whole."""
    if not isinstance(document, dict) or document.get("type") != "EPCISDocument":
        return [EventError(None, "invalid_epcis", "capture takes an EPCISDocument (type 'EPCISDocument')", "/type")]
    events = document.get("epcisBody", {}).get("eventList")
    if not isinstance(events, list) or not events:
        return [EventError(None, "invalid_epcis", "epcisBody.eventList: at least one event is needed",
                           "/epcisBody/eventList")]
    if len(events) > max_events:
        return [EventError(None, "batch_too_large", f"a capture holds at most {max_events} events, got {len(events)}",
                           "/epcisBody/eventList")]
    if document.get("schemaVersion") != "2.0":
        return [EventError(None, "invalid_epcis", "schemaVersion: only EPCIS 2.0 is captured", "/schemaVersion")]
    prefixes = context_prefixes(document.get("@context"))
    if prefixes.get(vocab.PREFIX) != vocab.NAMESPACE:
        return [EventError(None, "invalid_epcis",
                           f"@context: must declare {{\"{vocab.PREFIX}\": \"{vocab.NAMESPACE}\"}} (the partsledger "
                           "extension namespace that carries each event's signature)", "/@context")]
    return []


def plan_capture(document: Any, *, origin: str, directory: vocab.Directory, validator: EpcisValidator,
                 resolver: str = vocab.GS1_RESOLVER, max_events: int = DEFAULT_MAX_EVENTS) -> list[SignedEntry]:
    """Validate a capture document and map it to signed native entries (signatures checked on append)."""
    problems = validator.problems(document)
    if problems:
        raise CaptureRejected([EventError(p.event_index, "invalid_epcis", p.message, p.pointer) for p in problems])
    errors = _document_rules(document, max_events)
    if errors:
        raise CaptureRejected(errors, code=errors[0].code)
    events = document["epcisBody"]["eventList"]
    prefixes = context_prefixes(document["@context"])
    ctx = MapContext(directory, resolver)
    planned: list[SignedEntry] = []
    for index, event in enumerate(events):
        pointer = f"/epcisBody/eventList/{index}"
        try:
            claimed = event.get("eventID")
            if isinstance(claimed, str) and claimed.startswith("ni:///"):
                computed = event_hash(event, prefixes)
                if claimed != computed:
                    raise InvalidInput(f"eventID {claimed} is not this event's CBV 2.0 hash ({computed})",
                                       code="invalid_epcis", field="eventID")
            native = event_to_native(event, ctx=ctx)
            entry = validate_entry({"v": 1, "origin": origin, "type": native.type, "org": native.org,
                                    "kid": native.kid, "time": native.time, "nonce": native.nonce,
                                    "body": native.body})
            planned.append(parse_signed_entry({"entry": entry.data, "sig": native.sig}))
        except LedgerError as exc:
            sub = f"{pointer}/{exc.field}" if exc.field else pointer
            errors.append(EventError(index, exc.code, exc.message, sub))
    if errors:
        raise CaptureRejected(errors, total=len(events))
    return planned


def batch_errors(index: int, error: LedgerError, total: int) -> CaptureRejected:
    """The per-event error list when the policy rejected event ``index`` of ``total``."""
    errors = [EventError(index, error.code, error.message, f"/epcisBody/eventList/{index}")]
    errors += [EventError(i, "not_appended", "not appended: the capture is all or nothing", None)
               for i in range(total) if i != index]
    return CaptureRejected(errors, code=error.code, total=total, cause=error)


def ledger_directory(ledger: Ledger) -> vocab.Directory:
    """The org ⇄ GLN directory of a ledger, from its org projection."""
    from ledger.storage.state import StateStore

    directory = vocab.Directory()
    with ledger.db.read() as session:
        state = StateStore(session)
        offset = 0
        while True:
            orgs = state.list_orgs(offset=offset, limit=500)
            for org in orgs:
                directory.add(org.org_id, list(org.glns or []))
            if len(orgs) < 500:
                return directory
            offset += 500


def capture_document(ledger: Ledger, document: Any, *, validator: EpcisValidator,
                     resolver: str = vocab.GS1_RESOLVER, max_events: int = DEFAULT_MAX_EVENTS) -> list[Receipt]:
    """Validate, map and append a capture document in one transaction; all or nothing."""
    planned = plan_capture(document, origin=ledger.origin, directory=ledger_directory(ledger), validator=validator,
                           resolver=resolver, max_events=max_events)
    try:
        return ledger.append_batch(planned)
    except BatchRejected as exc:
        raise batch_errors(exc.index, exc.error, len(planned)) from None


def sign_document(document: dict[str, Any], signers: dict[str, tuple[str, KeyPair]], *, origin: str,
                  directory: vocab.Directory, nonce: str | None = None) -> dict[str, Any]:
    """Fill in ``pl:signedEntry`` for each event (the client side of capture).

    ``signers`` maps an event index to ``(org id, key)``; the event must
    already say what it is (``pl:eventType`` or an unambiguous bizStep) and
    may carry a ``pl:signedEntry`` with a chosen ``pl:nonce``. Returns a copy.
    """
    import secrets

    from ledger.entries import build_entry, sign_entry
    from ledger.keys import b64url_encode

    out = copy.deepcopy(document)
    ctx = MapContext(directory)
    for index, (org, key) in signers.items():
        event = out["epcisBody"]["eventList"][index]
        given = event.get(SIGNED_ENTRY) or {}
        chosen = given.get(vocab.ext("nonce")) or nonce or b64url_encode(secrets.token_bytes(16))
        event[SIGNED_ENTRY] = {vocab.ext("org"): org, vocab.ext("kid"): key.kid, vocab.ext("nonce"): chosen,
                               vocab.ext("sig"): b64encode(bytes(64))}
        native = event_to_native(event, ctx=ctx)
        entry = build_entry(origin=origin, type=native.type, org=org, kid=key.kid, body=native.body,
                            time=native.time, nonce=chosen)
        signed = sign_entry(entry, key)
        event[SIGNED_ENTRY][vocab.ext("sig")] = b64encode(signed.signature)
        if "eventID" in event:
            event["eventID"] = event_hash(event, context_prefixes(out.get("@context")))
    return out


__all__ = ["CaptureRejected", "EventError", "batch_errors", "capture_document", "entry_to_event", "ledger_directory",
           "plan_capture", "sign_document"]
