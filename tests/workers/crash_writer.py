"""A writer that appends until it is killed, printing each receipt only after it was committed.

Started by ``tests/ledger/test_crash.py``, which SIGKILLs it at random moments
and restarts it. It opens the ledger like a server does (``open_ledger``:
migrations, log key, genesis on first start), prints ``ready``, then appends
``key.add`` entries signed by the operator key — mostly one at a time, every
few rounds a batch of 2–8 — and after each ``append``/``append_batch`` has
returned (so after the commit) writes one JSON line per receipt to stdout
and flushes. A line the test sees is therefore a receipt a client held; a
line cut short by the kill is ignored by the test.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from ledger.entries import SignedEntry, make_signed_entry
from ledger.keys import KeyPair, b64encode, read_key_file
from ledger.service import LedgerSettings, open_ledger


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--count", type=int, default=0, help="stop after this many receipts (0: run until killed)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    ledger = open_ledger(LedgerSettings(data_dir=args.data_dir, db_url=args.db, origin=args.origin))
    operator = read_key_file(args.data_dir / "operator.key")
    org = ledger.record(0).entry.org
    rng = random.Random(args.seed)

    def entry() -> SignedEntry:
        return make_signed_entry(operator, origin=args.origin, type="key.add", org=org,
                                 body={"org_id": org, "public_key": b64encode(KeyPair.generate().public_key)})

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    written = 0
    while args.count == 0 or written < args.count:
        if rng.random() < 0.2:
            receipts = ledger.append_batch([entry() for _ in range(rng.randint(2, 8))])
        else:
            receipts = [ledger.append(entry())]
        sys.stdout.write("".join(json.dumps(r.to_json()) + "\n" for r in receipts))
        sys.stdout.flush()
        written += len(receipts)
    ledger.db.dispose()


if __name__ == "__main__":
    main()
