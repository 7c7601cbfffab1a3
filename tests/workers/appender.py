"""One concurrent appender: opens its own ``Ledger`` and appends ``--count`` entries.

Started by ``tests/ledger/test_concurrency.py`` eight times at once on the same
database URL and data directory (so every process shares the log key and the
operator key). Each entry is a ``key.add`` of a fresh key, signed by the key of
an org the test registered beforehand — a cheap event that is valid every time.

The worker writes a ready file, waits for the test's go file (so that all
processes start appending together), then records every receipt it was given
and every error it got, and writes them as JSON to ``--out``. A receipt is
recorded only after ``append`` returned, i.e. after the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from ledger.entries import make_signed_entry
from ledger.keys import KeyPair, b64encode, read_key_file
from ledger.service import LedgerSettings, open_ledger
from ledger.storage.db import Database


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="database URL shared by all workers")
    parser.add_argument("--data-dir", required=True, type=Path, help="data dir holding log.key and operator.key")
    parser.add_argument("--origin", required=True)
    parser.add_argument("--org", required=True, help="the registered org whose key signs the entries")
    parser.add_argument("--key-file", required=True, type=Path, help="that org's key file")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--out", required=True, type=Path, help="where to write the JSON result")
    parser.add_argument("--ready", type=Path, help="file to create once the ledger is open")
    parser.add_argument("--go", type=Path, help="file whose appearance starts the appends")
    parser.add_argument("--deferred-sqlite", action="store_true", help="negative control: deferred BEGIN")
    parser.add_argument("--no-lock", action="store_true", help="negative control: no PostgreSQL append lock")
    return parser.parse_args(argv)


def wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.005)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    database = Database(args.db, deferred_sqlite_writes=args.deferred_sqlite, lock_appends=not args.no_lock)
    settings = LedgerSettings(data_dir=args.data_dir, db_url=args.db, origin=args.origin)
    ledger = open_ledger(settings, database=database)
    signer = read_key_file(args.key_file)
    entries = [
        make_signed_entry(signer, origin=args.origin, type="key.add", org=args.org,
                          body={"org_id": args.org, "public_key": b64encode(KeyPair.generate().public_key)})
        for _ in range(args.count)
    ]
    if args.ready is not None:
        args.ready.touch()
    if args.go is not None:
        wait_for(args.go)
    receipts: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    started = time.monotonic()
    for signed in entries:
        try:
            receipt = ledger.append(signed)
        except Exception as exc:  # the negative controls expect database errors; record them all
            errors.append({"entry_id": signed.entry_id, "type": type(exc).__name__,
                           "message": (str(exc).splitlines() or [""])[0]})
            continue
        receipts.append(receipt.to_json())
    elapsed = time.monotonic() - started
    database.dispose()
    result = {"pid": os.getpid(), "org": args.org, "attempted": len(entries), "seconds": elapsed,
              "receipts": receipts, "errors": errors}
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
