"""The worked example of docs/formats.md, rebuilt from fixed keys, times and nonces."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from ledger import merkle
from ledger.entries import make_signed_entry
from ledger.keys import KeyPair, b64encode
from ledger.log import Ledger
from ledger.storage.db import Database

ORIGIN = "example.partsledger/log"
LOG_SEED = bytes(range(32))
OPERATOR_SEED = bytes(range(32, 64))
OEM_SEED = bytes(range(64, 96))
TIME = "2026-11-28T12:00:00Z"


def build() -> dict[str, str]:
    log_key = KeyPair.from_seed(LOG_SEED)
    operator = KeyPair.from_seed(OPERATOR_SEED)
    oem = KeyPair.from_seed(OEM_SEED)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'example.sqlite3'}")
        db.migrate()
        ledger = Ledger(db, origin=ORIGIN, log_key=log_key, clock=lambda: TIME)
        genesis = make_signed_entry(
            operator, origin=ORIGIN, type="log.genesis", org="example-operator", time=TIME,
            nonce="AAAAAAAAAAAAAAAAAAAAAA",
            body={"org_id": "example-operator", "name": "Example operator",
                  "public_keys": [b64encode(operator.public_key)]})
        ledger.append(genesis)
        register = make_signed_entry(
            operator, origin=ORIGIN, type="org.register", org="example-operator", time=TIME,
            nonce="AQEBAQEBAQEBAQEBAQEBAQ",
            body={"org_id": "volta-motors", "kind": "oem", "name": "Volta Motors", "country": "CN",
                  "gs1_prefixes": ["6901234"], "public_keys": [b64encode(oem.public_key)]})
        receipt = ledger.append(register)
        record = ledger.record(1)
        cp = ledger.latest_checkpoint()
        db.dispose()
    assert cp is not None
    return {
        "operator_public_key": b64encode(operator.public_key),
        "operator_kid": operator.kid,
        "entry_canonical": register.entry.canonical.decode(),
        "signed_message_prefix": "partsledger/v1/entry\\n",
        "entry_sig": b64encode(register.signature),
        "entry_id": register.entry_id,
        "record_canonical": record.canonical.decode(),
        "leaf_hash_b64": b64encode(record.leaf_hash),
        "leaf_hash_hex": record.leaf_hash.hex(),
        "prev_b64": b64encode(record.prev),
        "root_b64": b64encode(cp.root),
        "inclusion_proof": ", ".join(merkle.encode_proof(receipt.inclusion_proof)),
        "checkpoint": cp.note,
        "verifier_key": ledger.verifier_key,
        "sha256_check": hashlib.sha256(b"\x00" + record.canonical).hexdigest(),
    }


if __name__ == "__main__":
    for key, value in build().items():
        print(f"--- {key}\n{value}")
