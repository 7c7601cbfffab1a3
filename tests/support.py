"""Test helpers: a small world of orgs and keys around a ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.entries import SignedEntry, make_signed_entry
from ledger.keys import KeyPair, b64encode, read_key_file
from ledger.log import Ledger, Receipt


@dataclass
class Actor:
    org: str
    key: KeyPair


@dataclass
class World:
    ledger: Ledger
    operator: Actor
    actors: dict[str, Actor] = field(default_factory=dict)

    @classmethod
    def open(cls, ledger: Ledger, operator_key_file: Path) -> World:
        return cls(ledger=ledger, operator=Actor("partsledger-operator", read_key_file(operator_key_file)))

    def entry(self, actor: Actor, type: str, body: dict[str, Any], **kwargs: Any) -> SignedEntry:
        return make_signed_entry(actor.key, origin=self.ledger.origin, type=type, org=actor.org, body=body, **kwargs)

    def append(self, actor: Actor, type: str, body: dict[str, Any], **kwargs: Any) -> Receipt:
        return self.ledger.append(self.entry(actor, type, body, **kwargs))

    def register(self, org_id: str, kind: str, **fields: Any) -> Actor:
        key = KeyPair.generate()
        body = {"org_id": org_id, "kind": kind, "name": fields.pop("name", org_id.title()),
                "public_keys": [b64encode(key.public_key)], **fields}
        self.append(self.operator, "org.register", body)
        actor = Actor(org_id, key)
        self.actors[org_id] = actor
        return actor
