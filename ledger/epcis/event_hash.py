"""The CBV 2.0 EPCIS event hash: ``ni:///sha-256;<hex>?ver=CBV2.0``.

GS1's Core Business Vocabulary 2.0 (§8.9) defines an event identifier that
is a function of the event's content alone, so two parties holding the same
event compute the same ``eventID`` whatever the JSON key order or syntax. The
algorithm builds a *pre-hash string* and hashes it with SHA-256:

1. ``eventType=<type>``, then the standard fields in the canonical property
   order (``eventTime``, ``eventTimeZoneOffset``, ``certificationInfo``,
   ``parentID``, the EPC lists, quantity lists, ``action``,
   ``transformationID``, ``bizStep``, ``disposition``,
   ``persistentDisposition``, ``readPoint``, ``bizLocation``,
   ``sensorElementList``), each as ``key=value`` without separators; list
   items sorted;
2. everything else (source/destination/business-transaction lists, ILMD,
   user extensions as ``{namespace}localName``) appended, each rendered the
   same way and sorted;
3. ``eventID``, ``recordTime`` and ``errorDeclaration`` are left out, so a
   later error declaration does not change an event's id;
4. values are normalised: times to UTC with milliseconds, numbers without
   trailing zeros, CBV bare words and ``urn:epcglobal:cbv`` URNs to their
   ``https://ref.gs1.org/cbv/...`` web URIs, GS1 Digital Link URIs to their
   constrained canonical form on ``https://id.gs1.org``.

The layout follows GS1's reference implementation
(``epcis-event-hash-generator``, which the tests run as an independent
check): for example ``parentID`` precedes ``epcList`` and the
source/destination lists land in the sorted tail. Of the EPC URNs, the common
schemes (SGTIN, SSCC, SGLN, GRAI, GIAI, PGLN, LGTIN) are converted to Digital
Link; partsledger itself emits Digital Link URIs only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

HASH_VERSION = "CBV2.0"
CBV = "https://ref.gs1.org/cbv/"
GS1_VOC = "https://gs1.org/voc/"

_BARE_WORD_PREFIX = {
    "bizStep": CBV + "BizStep-",
    "disposition": CBV + "Disp-",
    "set": CBV + "Disp-",
    "unset": CBV + "Disp-",
    "reason": CBV + "ER-",
}
_LIST_TYPE_PREFIX = {"sourceList": CBV + "SDT-", "destinationList": CBV + "SDT-", "bizTransactionList": CBV + "BTT-"}
_URN_VOCAB = (
    ("urn:epcglobal:cbv:bizstep:", CBV + "BizStep-"),
    ("urn:epcglobal:cbv:disp:", CBV + "Disp-"),
    ("urn:epcglobal:cbv:btt:", CBV + "BTT-"),
    ("urn:epcglobal:cbv:sdt:", CBV + "SDT-"),
    ("urn:epcglobal:cbv:er:", CBV + "ER-"),
)
_COMMENTS = frozenset({"#text", "rdfs:comment", "comment"})  # never part of the hash
_IGNORED = frozenset({"type", "eventID", "recordTime", "errorDeclaration", "@context"}) | _COMMENTS
_EPC_LISTS = ("epcList", "inputEPCList", "childEPCs")
_QUANTITY_FIELDS = ("epcClass", "quantity", "uom")
_METADATA_ORDER = ("time", "startTime", "endTime", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod",
                   "bizRules")
_REPORT_ORDER = ("type", "exception", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod", "time",
                 "microorganism", "chemicalSubstance", "value", "component", "stringValue", "booleanValue",
                 "hexBinaryValue", "uriValue", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue",
                 "uom", "coordinateReferenceSystem")

# GS1 Digital Link: short names to AIs, and the keys allowed in the constrained canonical form.
_DL_SHORT = {"gtin": "01", "itip": "8006", "cpid": "8010", "gln": "414", "party": "417", "gsrnp": "8017",
             "gsrn": "8018", "gcn": "255", "sscc": "00", "gdti": "253", "ginc": "401", "gsin": "402", "grai": "8003",
             "giai": "8004", "cpv": "22", "lot": "10", "ser": "21"}
_DL_PRIMARY = ("00", "01", "253", "255", "401", "402", "414", "417", "8003", "8004", "8006", "8010", "8017", "8018")
_DL_DETECT = re.compile(
    r"^https?:(//((([^/?#]*)@)?([^/?#:]*)(:([^/?#]*))?))?((([^?#]*)(/(01|gtin|8006|itip|8010|cpid|414|gln|417|party"
    r"|8017|gsrnp|8018|gsrn|255|gcn|00|sscc|253|gdti|401|ginc|402|gsin|8003|grai|8004|giai)/)(\d{4}[^/]+)"
    r"(/[^/]+/[^/]+)?[/]?(\?([^?\n]*))?(#([^\n]*))?)|(/[A-Za-z_-]{10}$))"
)
_C = r"[\x22\x27\x2D\x2E\x30-\x39\x3B-\x3F\x41-\x5A\x5F\x61-\x7A]"
_DL_VALID = [re.compile("^https://id.gs1.org/" + p + "$") for p in (
    r"00/\d{18}", rf"01/\d{{14}}/21/{_C}{{0,20}}", rf"01/\d{{14}}/10/{_C}{{0,20}}", r"01/\d{14}",
    rf"01/\d{{14}}/235/{_C}{{0,28}}", rf"253/\d{{13}}{_C}{{0,17}}", r"255/\d{13}\d{0,12}", rf"401/{_C}{{0,30}}",
    r"402/\d{17}", r"414/\d{13}", rf"414/\d{{13}}/254/{_C}{{0,20}}", r"417/\d{13}", rf"8003/\d{{14}}{_C}{{0,16}}",
    rf"8004/{_C}{{0,30}}", rf"8006/\d{{18}}/21/{_C}{{0,20}}", rf"8006/\d{{18}}/10/{_C}{{0,20}}", r"8006/\d{18}",
    r"8010/[\x23\x2D\x2F\x30-\x39\x41-\x5A]{0,30}/8011/\d{0,12}", r"8010/[\x23\x2D\x2F\x30-\x39\x41-\x5A]{0,30}",
    r"8017/\d{18}", r"8018/\d{18}",
)]


def _check_digit(digits: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


def _dl_escape(text: str) -> str:
    for char, code in (("!", "%21"), ("(", "%28"), (")", "%29"), ("*", "%2A"), ("+", "%2B"), (",", "%2C"),
                       (":", "%3A")):
        text = text.replace(char, code)
    return text


_EPC_URN = re.compile(r"^urn:epc:(id|class|idpat):(sgtin|sscc|sgln|grai|giai|pgln|lgtin):(\d+)\.([^.]*)(?:\.(.+))?$")


def epc_urn_to_digital_link(uri: str) -> str | None:
    """The canonical Digital Link URI of the common EPC URNs (SGTIN, SSCC, SGLN, GRAI, GIAI, PGLN, LGTIN)."""
    m = _EPC_URN.match(uri)
    if m is None:
        return None
    form, scheme, prefix, ref, rest = m.groups()
    base = "https://id.gs1.org/"
    if form == "idpat":
        if scheme == "sgtin" and rest == "*" and ref.isdigit() and len(prefix) + len(ref) == 13:
            raw = ref[:1] + prefix + ref[1:]
            return f"{base}01/{raw}{_check_digit(raw)}"
        return None
    if scheme in ("sgtin", "lgtin") and rest and ref.isdigit() and len(prefix) + len(ref) == 13:
        if (scheme == "sgtin") != (form == "id"):
            return None
        raw = ref[:1] + prefix + ref[1:]
        return f"{base}01/{raw}{_check_digit(raw)}/{'21' if scheme == 'sgtin' else '10'}/{_dl_escape(rest)}"
    if form != "id":
        return None
    if scheme == "sscc" and rest is None and ref.isdigit() and len(prefix) + len(ref) == 17:
        raw = ref[:1] + prefix + ref[1:]
        return f"{base}00/{raw}{_check_digit(raw)}"
    if scheme == "sgln" and rest and len(prefix) + len(ref) == 12 and (ref.isdigit() or ref == ""):
        raw = prefix + ref
        gln = f"{base}414/{raw}{_check_digit(raw)}"
        return gln if rest == "0" else f"{gln}/254/{_dl_escape(rest)}"
    if scheme == "pgln" and rest is None and len(prefix) + len(ref) == 12 and (ref.isdigit() or ref == ""):
        raw = prefix + ref
        return f"{base}417/{raw}{_check_digit(raw)}"
    if scheme == "grai" and rest and len(prefix) + len(ref) == 12 and (ref.isdigit() or ref == ""):
        raw = "0" + prefix + ref
        return f"{base}8003/{raw}{_check_digit(raw)}{_dl_escape(rest)}"
    if scheme == "giai" and rest is None and ref:
        return f"{base}8004/{prefix}{_dl_escape(ref)}"
    return None


def normalise_digital_link(uri: str) -> str | None:
    """The constrained canonical GS1 Digital Link form of ``uri``, or ``None`` if it is not one.

    Custom resolver domains become ``https://id.gs1.org``, the query string
    and fragment go, short names become AIs, GTINs are padded to 14 digits,
    CPV is dropped and a lot is dropped when a serial is present.
    """
    if "." not in uri or not _DL_DETECT.match(uri):
        return None
    uri = uri.split("?", 1)[0].split("#", 1)[0]
    for name, ai in _DL_SHORT.items():
        uri = uri.replace(f"/{name}/", f"/{ai}/")
    if not re.match(r"^https://id\.gs1\.org/(" + "|".join(_DL_PRIMARY) + r")/", uri):
        for ai in _DL_PRIMARY:
            at = uri.find(f"/{ai}/")
            if at != -1:
                uri = "https://id.gs1.org" + uri[at:]
                break
    gtin = re.match(r"^https://id\.gs1\.org/01/(\d+)", uri)
    if gtin and len(gtin.group(1)) in (8, 12, 13):
        uri = uri.replace("/01/", "/01/" + "0" * (14 - len(gtin.group(1))), 1)
    uri = re.sub(r"^(https://id\.gs1\.org/(?:01/\d{14}|8006/\d{18}))/22/[^/]*", r"\1", uri)
    uri = re.sub(r"^(https://id\.gs1\.org/(?:01/\d{14}|8006/\d{18}))/10/[^/]*(/21/)", r"\1\2", uri)
    return uri if any(p.match(uri) for p in _DL_VALID) else None


def _numeric(text: str) -> str:
    """Numbers without trailing zeros or a leading '+' (non-numbers unchanged)."""
    try:
        number = float(text)
    except ValueError:
        return text
    try:
        if int(number) == number:
            return str(int(number))
    except (ValueError, OverflowError):
        return text
    return str(number)


def canonical_value(text: str) -> str:
    """Web-vocabulary URIs for CBV URNs, canonical numbers, canonical Digital Link URIs."""
    for urn, web in _URN_VOCAB:
        text = text.replace(urn, web)
    text = _numeric(text)
    return epc_urn_to_digital_link(text) or normalise_digital_link(text) or text


def canonical_time(text: str) -> str:
    """A timestamp in UTC with millisecond precision and a 'Z' (``2026-11-28T12:00:00.000Z``)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    micro = round(moment.microsecond, -3)
    if micro >= 1_000_000:
        return text
    return moment.replace(microsecond=micro).isoformat(timespec="milliseconds")[:-6] + "Z"


def _scalar(value: Any) -> str:
    return str(value).strip()


def _bare(key: str, value: str) -> str:
    """Expand a CBV bare word (``shipping``) in a standard field to its web URI."""
    if ":" in value:
        return value
    prefix = _BARE_WORD_PREFIX.get(key)
    return prefix + value if prefix else value


class _Namespaces:
    def __init__(self, prefixes: Mapping[str, str]) -> None:
        self.prefixes = dict(prefixes)

    def key(self, key: str) -> str:
        prefix, sep, local = key.partition(":")
        if sep and prefix in self.prefixes:
            return "{" + self.prefixes[prefix] + "}" + local
        return key

    def value(self, value: str) -> str:
        prefix, sep, local = value.partition(":")
        if sep and prefix in self.prefixes:
            return self.prefixes[prefix] + local
        return value


def _is_extension(key: str) -> bool:
    return key.startswith("{") and "/}" in key


def _generic(key: str, value: Any, ns: _Namespaces) -> list[str]:
    """Render a non-standard element: ``key=value`` or ``key`` + sorted children (one string per list item)."""
    name = ns.key(key)
    if isinstance(value, list):
        return [s for item in value for s in _generic(key, item, ns)]
    if isinstance(value, dict):
        children = sorted(s for k, v in value.items() if k not in _COMMENTS for s in _generic(k, v, ns))
        text = _scalar(value["#text"]) if "#text" in value else ""
        return [name + ("=" + canonical_value(text) if text else "") + "".join(children)]
    text = ns.value(_scalar(value)) if isinstance(value, str) else _scalar(value)
    return [name + ("=" + canonical_value(text) if text else "")]


def _typed_list(name: str, items: Sequence[Any], ns: _Namespaces) -> str:
    """``sourceList``/``destinationList``/``bizTransactionList``: ``type=...<key>=...`` per item, sorted."""
    member = name[:-4]
    rendered = []
    for item in items:
        if not isinstance(item, dict):
            continue
        parts = []
        for k, v in item.items():  # the reference keeps the item's own key order here
            text = _scalar(v)
            if k == "type" and ":" not in text:
                text = _LIST_TYPE_PREFIX[name] + text
            if k == member or k == "type":
                text = ns.value(text)
            parts.append(f"{k}={canonical_value(text)}" if text else k)
        rendered.append("".join(parts))
    return name + "".join(sorted(rendered)) if rendered else ""


def _ordered(obj: Mapping[str, Any], order: Sequence[str], ns: _Namespaces, *, times: bool = True,
             bare: Mapping[str, str] | None = None) -> tuple[str, set[str]]:
    out = []
    used = set()
    for field in order:
        if field not in obj:
            continue
        values = obj[field] if isinstance(obj[field], list) else [obj[field]]
        rendered = []
        for v in values:
            if isinstance(v, (dict, list)):
                continue
            text = _scalar(v)
            if not text:
                continue
            if times and "time" in field.lower() and "offset" not in field.lower():
                text = canonical_time(text)
            else:
                if bare and field in bare and ":" not in text:
                    text = bare[field] + text
                text = canonical_value(ns.value(text) if isinstance(v, str) else text)
            rendered.append(f"{field}={text}")
        out.append("".join(sorted(rendered)))
        used.add(field)
    return "".join(out), used


def _with_extensions(obj: Mapping[str, Any], order: Sequence[str], ns: _Namespaces,
                     bare: Mapping[str, str] | None = None) -> str:
    text, used = _ordered(obj, order, ns, bare=bare)
    extra = sorted(s for k, v in obj.items() if k not in used and _is_extension(ns.key(k))
                   for s in _generic(k, v, ns))
    return text + "".join(extra)


def _sensor_element(element: Mapping[str, Any], ns: _Namespaces) -> str:
    out = "sensorElement"
    meta = element.get("sensorMetadata")
    if isinstance(meta, dict):
        inner = _with_extensions(meta, _METADATA_ORDER, ns)
        if inner:
            out += "sensorMetadata" + inner
    reports = element.get("sensorReport")
    if isinstance(reports, list):
        rendered = []
        for report in reports:
            if isinstance(report, dict):
                inner = _with_extensions(report, _REPORT_ORDER, ns, bare={"type": GS1_VOC, "exception": GS1_VOC,
                                                                                "component": CBV + "Comp-"})
                if inner:
                    rendered.append("sensorReport" + inner)
        out += "".join(sorted(rendered))
    extra = sorted(s for k, v in element.items() if k not in ("sensorMetadata", "sensorReport")
                   and _is_extension(ns.key(k)) for s in _generic(k, v, ns))
    return out + "".join(extra)


def pre_hash_string(event: Mapping[str, Any], prefixes: Mapping[str, str] | None = None) -> str:
    """The CBV 2.0 pre-hash string of one event. ``prefixes`` maps CURIE prefixes to namespace URIs."""
    ns = _Namespaces(prefixes or {})
    parts = ["eventType=" + str(event.get("type", ""))]
    used: set[str] = set(_IGNORED)

    head, head_used = _ordered(event, ("eventTime", "eventTimeZoneOffset", "certificationInfo", "parentID"), ns)
    parts.append(head)
    used |= head_used
    for name in (*_EPC_LISTS, "quantityList", "childQuantityList", "inputQuantityList", "outputEPCList",
                 "outputQuantityList"):
        items = event.get(name)
        if not isinstance(items, list):
            continue
        used.add(name)
        if name.endswith("QuantityList") or name == "quantityList":
            rendered = ["quantityElement" + _ordered(q, _QUANTITY_FIELDS, ns)[0] for q in items if isinstance(q, dict)]
        else:
            rendered = ["epc=" + canonical_value(ns.value(_scalar(e))) for e in items if _scalar(e)]
        if rendered:
            parts.append(name + "".join(sorted(rendered)))
    tail, tail_used = _ordered(event, ("action", "transformationID", "bizStep", "disposition"), ns,
                               bare=_BARE_WORD_PREFIX)
    parts.append(tail)
    used |= tail_used
    persistent = event.get("persistentDisposition")
    if isinstance(persistent, dict):
        used.add("persistentDisposition")
        inner, _ = _ordered(persistent, ("set", "unset"), ns, bare=_BARE_WORD_PREFIX)
        if inner:
            parts.append("persistentDisposition" + inner)
    for name in ("readPoint", "bizLocation"):
        location = event.get(name)
        if isinstance(location, dict):
            used.add(name)
            inner = _with_extensions(location, ("id",), ns)
            if inner:
                parts.append(name + inner)
    sensors = event.get("sensorElementList")
    if isinstance(sensors, list):
        used.add("sensorElementList")
        rendered = [_sensor_element(s, ns) for s in sensors if isinstance(s, dict)]
        if rendered:
            parts.append("sensorElementList" + "".join(sorted(rendered)))

    rest: list[str] = []
    for key, value in event.items():
        if key in used:
            continue
        if key in _LIST_TYPE_PREFIX and isinstance(value, list):
            rendered_list = _typed_list(key, value, ns)
            if rendered_list:
                rest.append(rendered_list)
        else:
            rest.extend(_generic(key, value, ns))
    parts.append("".join(sorted(rest)))
    return "".join(parts)


def event_hash(event: Mapping[str, Any], prefixes: Mapping[str, str] | None = None) -> str:
    """The event's CBV 2.0 hash id: ``ni:///sha-256;<hex>?ver=CBV2.0``."""
    digest = hashlib.sha256(pre_hash_string(event, prefixes).encode("utf-8")).hexdigest()
    return f"ni:///sha-256;{digest}?ver={HASH_VERSION}"


def context_prefixes(context: Any) -> dict[str, str]:
    """The CURIE prefixes an EPCIS document's ``@context`` defines inline (``{"ex": "https://..."}``)."""
    items = context if isinstance(context, list) else [context]
    prefixes: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict):
            prefixes.update({k: v for k, v in item.items() if isinstance(v, str) and not k.startswith("@")})
    return prefixes


__all__ = [
    "HASH_VERSION",
    "canonical_time",
    "canonical_value",
    "context_prefixes",
    "event_hash",
    "normalise_digital_link",
    "pre_hash_string",
]
