"""partsledger entries ⇄ EPCIS 2.0 events (SPEC §7).

The mapping is a *bijection* between an entry's ``(type, body)`` and the
content of one EPCIS event, so that an exported event can be captured again
and yield byte-for-byte the entry its actor signed:

* each event type has a :class:`Rule` — EPCIS event type, ``action``,
  ``bizStep``, ``disposition`` — and a few codecs that move body fields to
  their standard EPCIS homes (part → ``epcList``/``childEPCs``, vehicle
  pseudonym → ``parentID``, site GLN → ``bizLocation``, counterparties →
  ``sourceList``/``destinationList``, state of health → ``sensorElementList``,
  recall lots → ``quantityList`` …). A codec only moves a field when the move
  can be undone exactly; otherwise the field stays an extension;
* every remaining body field becomes an extension property ``pl:<field>``;
* ``pl:eventType`` names the entry type and ``pl:signedEntry`` carries the
  actor's org, key id, nonce and Ed25519 signature, so an exported event is
  self-verifying and can be captured into a ledger with the same origin;
* ``eventTime`` is the actor's claimed time (``entry.time``), ``recordTime``
  the log's time, ``eventID`` the CBV 2.0 event hash.

Grants (who may commission or service which parts) are exported as
ObjectEvents with an empty ``epcList`` and ``pl:grant_*`` business steps, the
grantee as a ``pl:grantee`` destination. Orgs and keys are not exported: they
are the ledger's own directory, not supply-chain events.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.epcis import vocab
from ledger.epcis.event_hash import event_hash
from ledger.errors import InvalidInput

EXT_PREFIX = vocab.PREFIX + ":"
EVENT_TYPE = vocab.ext("eventType")
SIGNED_ENTRY = vocab.ext("signedEntry")
RESERVED = frozenset({EVENT_TYPE, SIGNED_ENTRY})
PREFIXES = {vocab.PREFIX: vocab.NAMESPACE}
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
_GLN_RE = re.compile(r"^\d{13}$")
_GTIN_RE = re.compile(r"^\d{14}$")
_SERIAL_RE = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}$")


@dataclass(frozen=True)
class MapContext:
    """What the mapping needs besides the entry: the org directory and the resolver for part URIs."""

    directory: vocab.Directory
    resolver: str = vocab.GS1_RESOLVER


Body = dict[str, Any]
Event = dict[str, Any]


# --- codecs ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Codec:
    """Moves some body fields to standard EPCIS fields (``encode``) and back (``decode``)."""

    encode: Callable[[Body, Event, MapContext], None]
    decode: Callable[[Event, Body, MapContext], None]
    fields: tuple[str, ...]  # the EPCIS fields it owns


def _part(gtin_key: str, serial_key: str, target: str) -> Codec:
    def encode(body: Body, event: Event, ctx: MapContext) -> None:
        gtin, serial = body.get(gtin_key), body.get(serial_key)
        if isinstance(gtin, str) and isinstance(serial, str) and _GTIN_RE.match(gtin) and _SERIAL_RE.match(serial):
            event[target] = [vocab.part_uri(gtin, serial, ctx.resolver)]
            del body[gtin_key], body[serial_key]

    def decode(event: Event, body: Body, ctx: MapContext) -> None:
        items = event.get(target)
        if not items:
            return
        if len(items) != 1:
            raise InvalidInput(f"{target}: partsledger records one part per event, got {len(items)}",
                               code="invalid_field", field=target)
        parsed = vocab.parse_part_uri(items[0])
        if parsed is None:
            raise InvalidInput(f"{target}: {items[0]!r} is not a GS1 Digital Link URI of a serialised part "
                               "(https://id.gs1.org/01/<GTIN-14>/21/<serial>)", code="invalid_uri", field=target)
        body[gtin_key], body[serial_key] = parsed

    return Codec(encode, decode, (target,))


def _vehicle(key: str = "vehicle") -> Codec:
    def encode(body: Body, event: Event, ctx: MapContext) -> None:
        value = body.get(key)
        if isinstance(value, str) and value:
            event["parentID"] = vocab.vehicle_uri(value)
            del body[key]

    def decode(event: Event, body: Body, ctx: MapContext) -> None:
        parent = event.get("parentID")
        if parent is None:
            return
        pseudonym = vocab.parse_vehicle_uri(str(parent))
        if pseudonym is None:
            raise InvalidInput(f"parentID: {parent!r} is not a vehicle pseudonym URI ({vocab.NAMESPACE}vehicle/...)",
                               code="invalid_uri", field="parentID")
        body[key] = pseudonym

    return Codec(encode, decode, ("parentID",))


def _site(key: str, target: str = "bizLocation") -> Codec:
    def encode(body: Body, event: Event, ctx: MapContext) -> None:
        value = body.get(key)
        if isinstance(value, str) and _GLN_RE.match(value):
            event[target] = {"id": vocab.gln_uri(value)}
            del body[key]

    def decode(event: Event, body: Body, ctx: MapContext) -> None:
        location = event.get(target)
        if location is None:
            return
        gln = vocab.parse_gln_uri(str(location.get("id", "")))
        if gln is None or set(location) != {"id"}:
            raise InvalidInput(f"{target}: expected {{'id': 'https://id.gs1.org/414/<GLN>'}}", code="invalid_uri",
                               field=target)
        body[key] = gln

    return Codec(encode, decode, (target,))


def _party(key: str, target: str, kind: str = "owning_party") -> Codec:
    member = target[:-4]

    def encode(body: Body, event: Event, ctx: MapContext) -> None:
        value = body.get(key)
        if isinstance(value, str) and value:
            uri = ctx.directory.party_uri(value)
            if ctx.directory.org_for_uri(uri) == value:
                event[target] = [{"type": kind, member: uri}]
                del body[key]

    def decode(event: Event, body: Body, ctx: MapContext) -> None:
        items = event.get(target)
        if not items:
            return
        if len(items) != 1 or items[0].get("type") != kind:
            raise InvalidInput(f"{target}: expected exactly one {kind} entry", code="invalid_field", field=target)
        uri = str(items[0][member])
        org = ctx.directory.org_for_uri(uri)
        if org is None:
            raise InvalidInput(f"{target}: {uri!r} names no registered org (by GLN or org URI)", code="unknown_org",
                               field=target)
        body[key] = org

    return Codec(encode, decode, (target,))


def _verdict(key: str, dispositions: Mapping[str, str]) -> Codec:
    inverse = {v: k for k, v in dispositions.items()}

    def encode(body: Body, event: Event, ctx: MapContext) -> None:
        value = body.get(key)
        if isinstance(value, str) and value in dispositions:
            event["disposition"] = dispositions[value]
            del body[key]

    def decode(event: Event, body: Body, ctx: MapContext) -> None:
        value = event.get("disposition")
        if value is None:
            return
        if value not in inverse:
            raise InvalidInput(f"disposition: expected one of {', '.join(sorted(inverse))}", code="invalid_field",
                               field="disposition")
        body[key] = inverse[value]

    return Codec(encode, decode, ("disposition",))


def _sensor(key: str, measurement: str = "Dimensionless", uom: str = "P1") -> Codec:
    def encode(body: Body, event: Event, ctx: MapContext) -> None:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            event["sensorElementList"] = [{"sensorReport": [{"type": measurement, "value": value, "uom": uom}]}]
            del body[key]

    def decode(event: Event, body: Body, ctx: MapContext) -> None:
        elements = event.get("sensorElementList")
        if elements is None:
            return
        try:
            (element,) = elements
            (report,) = element["sensorReport"]
            ok = set(element) == {"sensorReport"} and report == {"type": measurement, "value": report["value"],
                                                                 "uom": uom}
            value = report["value"]
        except (ValueError, KeyError, TypeError):
            ok, value = False, None
        if not ok or not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInput(f"sensorElementList: expected one sensorReport {{type {measurement}, integer value, "
                               f"uom {uom}}}", code="invalid_field", field="sensorElementList")
        body[key] = value

    return Codec(encode, decode, ("sensorElementList",))


def _product_class(gtin_key: str = "gtin", lots_key: str = "lots") -> Codec:
    """A recall names a GTIN and optionally lots: ``quantityList`` of class URIs (GTIN or GTIN + lot)."""

    def encode(body: Body, event: Event, ctx: MapContext) -> None:
        gtin, lots = body.get(gtin_key), body.get(lots_key)
        if not isinstance(gtin, str) or not _GTIN_RE.match(gtin):
            return
        if isinstance(lots, list) and lots and all(isinstance(x, str) and _SERIAL_RE.match(x) for x in lots) \
                and len(set(lots)) == len(lots):
            event["quantityList"] = [{"epcClass": vocab.class_uri(gtin, lot, ctx.resolver)} for lot in lots]
            del body[lots_key]
        else:
            event["quantityList"] = [{"epcClass": vocab.class_uri(gtin, None, ctx.resolver)}]
        del body[gtin_key]

    def decode(event: Event, body: Body, ctx: MapContext) -> None:
        items = event.get("quantityList")
        if not items:
            return
        parsed = [vocab.parse_class_uri(str(item.get("epcClass", ""))) if set(item) == {"epcClass"} else None
                  for item in items]
        if any(p is None for p in parsed) or len({p[0] for p in parsed if p}) != 1:
            raise InvalidInput("quantityList: expected class URIs of one GTIN (…/01/<gtin> or …/01/<gtin>/10/<lot>) "
                               "without quantities", code="invalid_field", field="quantityList")
        lots = [p[1] for p in parsed if p]
        body[gtin_key] = parsed[0][0] if parsed[0] else ""
        if lots != [None]:
            if None in lots:
                raise InvalidInput("quantityList: mix of GTIN-level and lot-level classes", code="invalid_field",
                                   field="quantityList")
            body[lots_key] = lots

    return Codec(encode, decode, ("quantityList",))


# --- rules ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    native: str
    kind: str
    action: str | None
    biz_step: str
    disposition: str | None = None
    persistent: tuple[str, str] | None = None  # ("set"|"unset", disposition)
    codecs: tuple[Codec, ...] = ()
    epc_field: str | None = "epcList"


_PART = _part("gtin", "serial", "epcList")
_CHILD = _part("gtin", "serial", "childEPCs")

RULES: dict[str, Rule] = {r.native: r for r in (
    Rule("part.commission", "ObjectEvent", "ADD", "commissioning", "active", codecs=(_PART, _site("site"))),
    Rule("part.ship", "ObjectEvent", "OBSERVE", "shipping", "in_transit",
         codecs=(_PART, _party("to", "destinationList"), _site("site"))),
    Rule("part.receive", "ObjectEvent", "OBSERVE", "receiving", "in_progress",
         codecs=(_PART, _party("from", "sourceList"), _site("site"))),
    Rule("part.install", "AssociationEvent", "ADD", "installing", "active",
         codecs=(_CHILD, _vehicle(), _site("site")), epc_field=None),
    Rule("part.remove", "AssociationEvent", "DELETE", "removing", None,
         codecs=(_CHILD, _vehicle(), _site("site")), epc_field=None),
    Rule("part.inspect", "ObjectEvent", "OBSERVE", "inspecting", None,
         codecs=(_PART, _verdict("result", {"pass": "conformant", "fail": "non_conformant"}), _site("site"))),
    Rule("part.repair", "ObjectEvent", "OBSERVE", "repairing", None,
         codecs=(_PART, _verdict("result", {"pass": "conformant", "fail": "non_conformant"}), _site("site"))),
    Rule("part.return", "ObjectEvent", "OBSERVE", "shipping", "returned",
         codecs=(_PART, _party("to", "destinationList"), _site("site"))),
    Rule("part.scrap", "ObjectEvent", "DELETE", "decommissioning", "disposed", codecs=(_PART, _site("site"))),
    Rule("part.collect", "ObjectEvent", "OBSERVE", "collecting", "in_progress",
         codecs=(_PART, _party("from", "sourceList"), _site("site"))),
    Rule("part.recycle", "ObjectEvent", "DELETE", "destroying", "destroyed", codecs=(_PART, _site("site"))),
    Rule("part.repurpose", "TransformationEvent", None, "commissioning", "active",
         codecs=(_part("gtin", "serial", "inputEPCList"), _part("new_gtin", "new_serial", "outputEPCList"),
                 _site("site")), epc_field=None),
    Rule("battery.soh", "ObjectEvent", "OBSERVE", "sensor_reporting", None,
         codecs=(_PART, _sensor("soh_pct"), _site("site"))),
    Rule("recall.set", "ObjectEvent", "OBSERVE", "holding", None, persistent=("set", "recalled"),
         codecs=(_product_class(),), epc_field="quantityList"),
    Rule("recall.clear", "ObjectEvent", "OBSERVE", "holding", None, persistent=("unset", "recalled"),
         codecs=(_product_class(),), epc_field="quantityList"),
    Rule("warranty.claim", "ObjectEvent", "OBSERVE", vocab.ext("warranty_claim"), None, codecs=(_PART,)),
    Rule("warranty.decide", "ObjectEvent", "OBSERVE", vocab.ext("warranty_decision"), None, codecs=(_PART,)),
    Rule("warranty.pay", "ObjectEvent", "OBSERVE", vocab.ext("warranty_payment"), None, codecs=(_PART,)),
    Rule("entry.correct", "ObjectEvent", "OBSERVE", vocab.ext("correcting"), None),
    Rule("grant.issue", "ObjectEvent", "OBSERVE", vocab.ext("grant_issue"), None,
         codecs=(_party("grantee", "destinationList", vocab.ext("grantee")),)),
    Rule("grant.suspend", "ObjectEvent", "OBSERVE", vocab.ext("grant_suspend"), None),
    Rule("grant.resume", "ObjectEvent", "OBSERVE", vocab.ext("grant_resume"), None),
    Rule("grant.revoke", "ObjectEvent", "OBSERVE", vocab.ext("grant_revoke"), None),
)}

#: Entry types exported as EPCIS events.
EXPORTED_TYPES = frozenset(RULES)


# --- values in the extension namespace ----------------------------------------------------------------------
def to_extension(value: Any) -> Any:
    """Body values as JSON-LD: object keys get the ``pl:`` prefix, everything else is kept verbatim."""
    if isinstance(value, dict):
        return {EXT_PREFIX + k: to_extension(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_extension(v) for v in value]
    return value


def from_extension(value: Any, *, where: str) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not k.startswith(EXT_PREFIX):
                raise InvalidInput(f"{where}: nested property {k!r} must be in the {vocab.PREFIX}: namespace",
                                   code="invalid_field", field=where)
            out[k[len(EXT_PREFIX):]] = from_extension(v, where=where)
        return out
    if isinstance(value, list):
        return [from_extension(v, where=where) for v in value]
    if isinstance(value, float):
        raise InvalidInput(f"{where}: floats are not allowed in signed content; use integers or decimal strings",
                           code="invalid_field", field=where)
    return value


# --- export -------------------------------------------------------------------------------------------------
def entry_to_event(entry: Mapping[str, Any], sig_b64: str, *, ctx: MapContext, logged: str | None = None,
                   ) -> Event | None:
    """The EPCIS event for a signed entry, or ``None`` if its type has no EPCIS meaning."""
    rule = RULES.get(str(entry["type"]))
    if rule is None:
        return None
    body: Body = copy.deepcopy(dict(entry["body"]))
    standard: Event = {}
    for codec in rule.codecs:
        codec.encode(body, standard, ctx)
    event: Event = {"type": rule.kind, "eventTime": entry["time"], "eventTimeZoneOffset": "+00:00"}
    if logged is not None:
        event["recordTime"] = logged
    event["eventID"] = ""
    if rule.kind == "AssociationEvent":
        for key in ("parentID", "childEPCs"):
            if key in standard:
                event[key] = standard.pop(key)
        if "parentID" not in event:  # schema requires one; an unknown vehicle is named explicitly
            event["parentID"] = vocab.vehicle_uri("unknown")
    if rule.kind == "TransformationEvent":
        for key in ("inputEPCList", "outputEPCList"):
            if key in standard:
                event[key] = standard.pop(key)
    if rule.epc_field == "epcList":
        event["epcList"] = standard.pop("epcList", [])
    if rule.epc_field == "quantityList" and "quantityList" in standard:
        event["quantityList"] = standard.pop("quantityList")
    if rule.action is not None:
        event["action"] = rule.action
    event["bizStep"] = rule.biz_step
    if "disposition" in standard:
        event["disposition"] = standard.pop("disposition")
    elif rule.disposition is not None:
        event["disposition"] = rule.disposition
    if rule.persistent is not None:
        event["persistentDisposition"] = {rule.persistent[0]: [rule.persistent[1]]}
    for key in ("readPoint", "bizLocation", "sourceList", "destinationList", "sensorElementList"):
        if key in standard:
            event[key] = standard.pop(key)
    if rule.epc_field == "quantityList" and "quantityList" not in event:
        event["epcList"] = []
    event[EVENT_TYPE] = rule.native
    for key, value in body.items():
        name = EXT_PREFIX + key
        if name in RESERVED:
            raise InvalidInput(f"body field {key!r} collides with a reserved extension property", field=key)
        event[name] = to_extension(value)
    event[SIGNED_ENTRY] = {
        vocab.ext("org"): entry["org"],
        vocab.ext("kid"): entry["kid"],
        vocab.ext("nonce"): entry["nonce"],
        vocab.ext("sig"): sig_b64,
    }
    event["eventID"] = event_hash(event, PREFIXES)
    return event


# --- capture ------------------------------------------------------------------------------------------------
@dataclass
class NativeEvent:
    """What one EPCIS event means natively: the entry fields and the actor's signature."""

    type: str
    org: str
    kid: str
    time: str
    nonce: str
    body: Body
    sig: str
    warnings: list[str] = field(default_factory=list)


def _entry_time(event: Mapping[str, Any]) -> str:
    text = str(event.get("eventTime", ""))
    if _TIME_RE.match(text):
        return text
    try:  # RFC 3339 allows a lower-case 't' and 'z'
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"eventTime: {text!r} is not an RFC 3339 time", code="invalid_time",
                           field="eventTime") from None
    if moment.tzinfo is None:
        raise InvalidInput("eventTime: needs a time zone", code="invalid_time", field="eventTime")
    moment = moment.astimezone(UTC)
    frac = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def _infer_rule(event: Mapping[str, Any]) -> Rule:
    named = event.get(EVENT_TYPE)
    if named is not None:
        rule = RULES.get(str(named))
        if rule is None:
            raise InvalidInput(f"{EVENT_TYPE}: {named!r} is not an event type partsledger captures; known: "
                               f"{', '.join(sorted(RULES))}", code="invalid_field", field=EVENT_TYPE)
        return rule
    key = (event.get("type"), event.get("action"), event.get("bizStep"))
    matches = [r for r in RULES.values() if (r.kind, r.action, r.biz_step) == key]
    if len(matches) != 1:
        raise InvalidInput(f"cannot tell which partsledger event this is from type/action/bizStep; add "
                           f"{EVENT_TYPE}", code="invalid_field", field=EVENT_TYPE)
    return matches[0]


_STANDARD_HANDLED = {"type", "eventTime", "eventTimeZoneOffset", "recordTime", "eventID", "errorDeclaration",
                     "action", "bizStep", "disposition", "persistentDisposition", "epcList"}


def event_to_native(event: Mapping[str, Any], *, ctx: MapContext) -> NativeEvent:
    """Map one captured EPCIS event back to the entry its actor signed (strict: nothing may be dropped)."""
    rule = _infer_rule(event)
    if event.get("type") != rule.kind or event.get("action") != rule.action or event.get("bizStep") != rule.biz_step:
        raise InvalidInput(f"{rule.native} is captured as a {rule.kind} with action {rule.action} and bizStep "
                           f"{rule.biz_step}", code="invalid_field", field="bizStep")
    if rule.persistent is not None and event.get("persistentDisposition") != {rule.persistent[0]: [rule.persistent[1]]}:
        raise InvalidInput(f"{rule.native}: persistentDisposition must be {{{rule.persistent[0]!r}: "
                           f"[{rule.persistent[1]!r}]}}", code="invalid_field", field="persistentDisposition")
    signed = event.get(SIGNED_ENTRY)
    names = {vocab.ext(n) for n in ("org", "kid", "nonce", "sig")}
    if not isinstance(signed, dict) or set(signed) != names or not all(isinstance(v, str) for v in signed.values()):
        raise InvalidInput(f"{SIGNED_ENTRY}: every captured event carries its actor's signature block "
                           f"{{{', '.join(sorted(names))}}} (see docs/epcis.md)", code="bad_signature",
                           field=SIGNED_ENTRY)
    owned = {f for codec in rule.codecs for f in codec.fields}
    allowed = _STANDARD_HANDLED | owned | ({"parentID"} if rule.kind == "AssociationEvent" else set())
    body: Body = {}
    for codec in rule.codecs:
        codec.decode(dict(event), body, ctx)
    if rule.kind == "AssociationEvent" and event.get("parentID") == vocab.vehicle_uri("unknown"):
        body.pop("vehicle", None)
    if rule.epc_field == "epcList" and "epcList" not in owned and event.get("epcList"):
        raise InvalidInput(f"epcList: {rule.native} names no part", code="invalid_field", field="epcList")
    disposition = event.get("disposition")
    if "disposition" not in owned and disposition is not None and disposition != rule.disposition:
        raise InvalidInput(f"disposition: {rule.native} has disposition {rule.disposition!r}", code="invalid_field",
                           field="disposition")
    for key, value in event.items():
        if key in allowed or key in RESERVED:
            continue
        if not key.startswith(EXT_PREFIX):
            raise InvalidInput(f"{key}: partsledger does not record this field for {rule.native}; it would be lost",
                               code="invalid_field", field=key)
        name = key[len(EXT_PREFIX):]
        if name in body:
            raise InvalidInput(f"{key}: given both as a standard EPCIS field and as an extension", code="invalid_field",
                               field=key)
        body[name] = from_extension(value, where=key)
    return NativeEvent(type=rule.native, org=signed[vocab.ext("org")], kid=signed[vocab.ext("kid")],
                       time=_entry_time(event), nonce=signed[vocab.ext("nonce")], body=body,
                       sig=signed[vocab.ext("sig")])


__all__ = [
    "EVENT_TYPE",
    "EXPORTED_TYPES",
    "PREFIXES",
    "RULES",
    "SIGNED_ENTRY",
    "MapContext",
    "NativeEvent",
    "Rule",
    "entry_to_event",
    "event_to_native",
]
