"""Identifiers and the project extension namespace used in partsledger's EPCIS events.

* Parts are GS1 Digital Link URIs ``<resolver>/01/<GTIN-14>/21/<serial>``
  (default resolver ``https://id.gs1.org``); a GTIN alone or GTIN + lot
  (``/01/<gtin>/10/<lot>``) names a class of parts, as in recalls.
* Parties and sites are GLN Digital Link URIs ``https://id.gs1.org/414/<gln>``.
  An org registered without a GLN is named ``<namespace>org/<org id>``.
* Vehicles are pseudonyms (never VINs): ``<namespace>vehicle/<pseudonym>``.
* Project facts (warranty, grants, the actor's signature, any body field that
  has no standard EPCIS home) are properties ``pl:<name>`` in one extension
  namespace, declared by an inline JSON-LD context ``{"pl": NAMESPACE}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

NAMESPACE = "https://ns.partsledger.org/epcis/"
PREFIX = "pl"
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
GS1_RESOLVER = "https://id.gs1.org"

#: The ``@context`` of every document partsledger writes.
DOCUMENT_CONTEXT: list[Any] = [EPCIS_CONTEXT, {PREFIX: NAMESPACE}]

#: The extension namespace's own JSON-LD context document (served at ``/v1/epcis/context.jsonld``).
EXTENSION_CONTEXT: dict[str, Any] = {
    "@context": {
        PREFIX: NAMESPACE,
        "pl:eventType": {"@id": NAMESPACE + "eventType"},
        "pl:entry": {"@id": NAMESPACE + "entry"},
        "pl:org": {"@id": NAMESPACE + "org"},
        "pl:kid": {"@id": NAMESPACE + "kid"},
        "pl:nonce": {"@id": NAMESPACE + "nonce"},
        "pl:sig": {"@id": NAMESPACE + "sig"},
    }
}

_GTIN = r"\d{14}"
_GLN_URI = re.compile(r"^https://id\.gs1\.org/414/(\d{13})$")
_PART_URI = re.compile(r"^(https?://[^/?#]+(?:/[^?#]*?)?)/01/(" + _GTIN + r")/21/([^/?#]+)$")
_CLASS_URI = re.compile(r"^(https?://[^/?#]+(?:/[^?#]*?)?)/01/(" + _GTIN + r")(?:/10/([^/?#]+))?$")


def ext(name: str) -> str:
    """The compact name of an extension property: ``pl:<name>``."""
    return f"{PREFIX}:{name}"


def part_uri(gtin: str, serial: str, resolver: str = GS1_RESOLVER) -> str:
    return f"{resolver.rstrip('/')}/01/{gtin}/21/{quote(serial, safe='')}"


def class_uri(gtin: str, lot: str | None = None, resolver: str = GS1_RESOLVER) -> str:
    base = f"{resolver.rstrip('/')}/01/{gtin}"
    return base if lot is None else f"{base}/10/{quote(lot, safe='')}"


def parse_part_uri(uri: str) -> tuple[str, str] | None:
    """``(gtin, serial)`` of a part Digital Link URI on any resolver; ``None`` if it is not one."""
    m = _PART_URI.match(uri)
    return None if m is None else (m.group(2), unquote(m.group(3)))


def parse_class_uri(uri: str) -> tuple[str, str | None] | None:
    """``(gtin, lot or None)`` of a class-level Digital Link URI; ``None`` if it is not one."""
    m = _CLASS_URI.match(uri)
    return None if m is None else (m.group(2), None if m.group(3) is None else unquote(m.group(3)))


def gln_uri(gln: str) -> str:
    return f"{GS1_RESOLVER}/414/{gln}"


def parse_gln_uri(uri: str) -> str | None:
    m = _GLN_URI.match(uri)
    return None if m is None else m.group(1)


def vehicle_uri(pseudonym: str) -> str:
    return f"{NAMESPACE}vehicle/{quote(pseudonym, safe='')}"


def parse_vehicle_uri(uri: str) -> str | None:
    prefix = f"{NAMESPACE}vehicle/"
    return unquote(uri[len(prefix):]) if uri.startswith(prefix) and len(uri) > len(prefix) else None


@dataclass
class Directory:
    """Which GLNs belong to which org: turns org ids into party URIs and back.

    Built from the orgs' registrations (their ``glns``); the first GLN of an
    org is its party GLN. A GLN claimed by two orgs cannot be resolved back
    and is therefore never used as a party URI.
    """

    glns: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_orgs(cls, orgs: Mapping[str, list[str]]) -> Directory:
        return cls({org: list(glns) for org, glns in orgs.items()})

    def add(self, org_id: str, glns: list[str]) -> None:
        self.glns[org_id] = list(glns)

    def _owners(self, gln: str) -> list[str]:
        return [org for org, glns in self.glns.items() if gln in glns]

    def party_uri(self, org_id: str) -> str:
        glns = self.glns.get(org_id) or []
        if glns and self._owners(glns[0]) == [org_id]:
            return gln_uri(glns[0])
        return f"{NAMESPACE}org/{quote(org_id, safe='')}"

    def org_for_uri(self, uri: str) -> str | None:
        gln = parse_gln_uri(uri)
        if gln is not None:
            owners = self._owners(gln)
            return owners[0] if len(owners) == 1 and self.glns[owners[0]][0] == gln else None
        prefix = f"{NAMESPACE}org/"
        if uri.startswith(prefix):
            org = unquote(uri[len(prefix):])
            return org if org in self.glns else None
        return None


__all__ = [
    "DOCUMENT_CONTEXT",
    "EPCIS_CONTEXT",
    "EXTENSION_CONTEXT",
    "GS1_RESOLVER",
    "NAMESPACE",
    "PREFIX",
    "Directory",
    "class_uri",
    "ext",
    "gln_uri",
    "parse_class_uri",
    "parse_gln_uri",
    "parse_part_uri",
    "parse_vehicle_uri",
    "part_uri",
    "vehicle_uri",
]
