"""The benchmark's log and its entries, prepared outside every timed section.

A fresh log is opened on SQLite (a file in WAL mode with ``synchronous=FULL``,
as the ledger always configures it) or in a scratch PostgreSQL schema that is
dropped afterwards. One workshop org is registered; every benchmark entry is
a ``key.add`` of a fresh key signed by that org — a real event that is valid
any number of times, so each append does the full work: signature check,
policy, projection row, record, Merkle nodes, checkpoint.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from ledger.entries import SignedEntry, make_signed_entry
from ledger.keys import KeyPair, b64encode, read_key_file
from ledger.log import Ledger
from ledger.service import LedgerSettings, open_ledger
from ledger.storage.db import normalize_url

ORIGIN = "bench.partsledger/log"
ORG = "bench-shop"


@dataclass
class BenchLog:
    """An open ledger plus what is needed to write to it and to serve it from another process."""

    ledger: Ledger
    url: str
    data_dir: Path
    signer: KeyPair

    def entries(self, count: int) -> list[SignedEntry]:
        """``count`` fresh, valid, signed entries (each adds a new key to the bench org)."""
        return [
            make_signed_entry(self.signer, origin=ORIGIN, type="key.add", org=ORG,
                              body={"org_id": ORG, "public_key": b64encode(KeyPair.generate().public_key)})
            for _ in range(count)
        ]


def entry_bodies(entries: list[SignedEntry]) -> list[bytes]:
    """The HTTP request bodies of ``entries``, serialised in advance."""
    return [json.dumps(e.to_json(), separators=(",", ":")).encode() for e in entries]


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{normalize_url(base)}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def scratch_database(kind: str, pg_url: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database URL; removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'ledger.sqlite3'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    engine = create_engine(normalize_url(pg_url))
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _pg_schema_url(pg_url, schema)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()


@contextmanager
def bench_log(kind: str, pg_url: str, workdir: Path | None = None) -> Iterator[BenchLog]:
    """Open a fresh log with the bench org registered; clean everything up afterwards."""
    base = Path(tempfile.mkdtemp(prefix="partsledger-bench-", dir=workdir))
    try:
        with scratch_database(kind, pg_url, base) as url:
            data_dir = base / "data"
            ledger = open_ledger(LedgerSettings(data_dir=data_dir, db_url=url, origin=ORIGIN))
            operator = read_key_file(data_dir / "operator.key")
            signer = KeyPair.generate()
            ledger.append(make_signed_entry(operator, origin=ORIGIN, type="org.register", org="partsledger-operator",
                                            body={"org_id": ORG, "kind": "workshop", "name": "Bench Shop",
                                                  "public_keys": [b64encode(signer.public_key)]}))
            try:
                yield BenchLog(ledger=ledger, url=url, data_dir=data_dir, signer=signer)
            finally:
                ledger.db.dispose()
    finally:
        shutil.rmtree(base, ignore_errors=True)
