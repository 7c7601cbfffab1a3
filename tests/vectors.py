"""Readers for the known-answer vectors under ``tests/data``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Ed25519Vector:
    name: str
    secret_key: bytes
    public_key: bytes
    message: bytes
    signature: bytes


def ed25519_vectors() -> list[Ed25519Vector]:
    """RFC 8032 §7.1 test vectors from ``data/ed25519/rfc8032.json``."""
    doc = json.loads((DATA / "ed25519" / "rfc8032.json").read_text(encoding="utf-8"))
    return [
        Ed25519Vector(
            name=item["name"],
            secret_key=bytes.fromhex(item["secret_key"]),
            public_key=bytes.fromhex(item["public_key"]),
            message=bytes.fromhex(item["message"]),
            signature=bytes.fromhex(item["signature"]),
        )
        for item in doc["vectors"]
    ]


@dataclass(frozen=True)
class CanonicalVector:
    name: str
    input: bytes
    output: bytes


def rfc8785_vectors() -> list[CanonicalVector]:
    """Every ``input/<name>.json`` with its ``output/<name>.json`` from ``data/rfc8785``."""
    base = DATA / "rfc8785"
    return [
        CanonicalVector(name=path.stem, input=path.read_bytes(), output=(base / "output" / path.name).read_bytes())
        for path in sorted((base / "input").glob("*.json"))
    ]
