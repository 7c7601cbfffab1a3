"""The checker behind the concurrency and crash evidence: is this log one unforked history?

It reads the stored records straight from the tables (so that it still works
on a scratch database whose unique constraints were dropped to let a fork
through) and compares them with the receipts the clients were given:

* sequence numbers 0..N-1, each exactly once (no gaps, no duplicates);
* no entry id twice, no two records claiming the same predecessor (a fork),
  every record chained to the one before it;
* every acknowledged entry is stored at the seq its receipt names, with the
  leaf hash the receipt names;
* every receipt's checkpoint is signed by the log and its inclusion proof leads
  to that checkpoint's root; no two signed checkpoints of one size disagree
  on the root (the classic proof of a fork); the latest checkpoint covers every
  stored record and is consistent (RFC 6962 consistency proof, as served by
  the ledger) with every checkpoint a client was given;
* :func:`ledger.verify.verify_database` passes.

Every problem becomes a line in :attr:`Audit.problems`; the tests assert on the
categorised lists, so a negative control can show exactly what was caught.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ledger import merkle
from ledger.checkpoint import verify_checkpoint
from ledger.errors import IntegrityError
from ledger.keys import b64decode
from ledger.log import Ledger
from ledger.note import parse_verifier_key
from ledger.storage.log_tables import CHECKPOINTS, RECORDS
from ledger.verify import verify_database


@dataclass(frozen=True)
class Row:
    seq: int
    entry_id: str
    prev_hash: bytes
    leaf_hash: bytes


@dataclass
class Audit:
    records: int = 0
    checkpoints: int = 0
    receipts: int = 0
    duplicate_seqs: list[int] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)
    duplicate_entry_ids: list[str] = field(default_factory=list)
    forks: list[str] = field(default_factory=list)
    broken_links: list[int] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    bad_receipts: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    uncovered_tail: int = 0
    verify_error: str | None = None
    verify_seq: int | None = None

    @property
    def problems(self) -> list[str]:
        out: list[str] = []
        out += [f"seq {s} stored more than once" for s in self.duplicate_seqs]
        out += [f"seq {s} missing" for s in self.gaps]
        out += [f"entry {e} stored more than once" for e in self.duplicate_entry_ids]
        out += self.forks
        out += [f"record {s} does not chain to record {s - 1}" for s in self.broken_links]
        out += [f"acknowledged entry lost: {e}" for e in self.lost]
        out += self.bad_receipts + self.inconsistent
        if self.uncovered_tail:
            out.append(f"{self.uncovered_tail} records beyond the latest checkpoint")
        if self.verify_error is not None:
            out.append(f"verify: {self.verify_error}")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems


def read_rows(ledger: Ledger) -> list[Row]:
    with ledger.db.read() as session:
        rows = session.execute(
            select(RECORDS.c.seq, RECORDS.c.entry_id, RECORDS.c.prev_hash, RECORDS.c.leaf_hash)
            .order_by(RECORDS.c.seq)
        ).all()
    return [Row(int(r[0]), str(r[1]), bytes(r[2]), bytes(r[3])) for r in rows]


def read_checkpoint_notes(ledger: Ledger) -> list[tuple[int, str]]:
    with ledger.db.read() as session:
        rows = session.execute(select(CHECKPOINTS.c.size, CHECKPOINTS.c.note).order_by(CHECKPOINTS.c.size)).all()
    return [(int(r[0]), str(r[1])) for r in rows]


def _check_shape(rows: list[Row], audit: Audit) -> None:
    seq_counts = Counter(r.seq for r in rows)
    audit.duplicate_seqs = sorted(s for s, n in seq_counts.items() if n > 1)
    top = max(seq_counts, default=-1)
    audit.gaps = [s for s in range(top + 1) if s not in seq_counts]
    audit.duplicate_entry_ids = sorted(e for e, n in Counter(r.entry_id for r in rows).items() if n > 1)
    children: dict[bytes, list[int]] = defaultdict(list)
    for row in rows:
        children[row.prev_hash].append(row.seq)
    audit.forks = [f"fork: records {sorted(seqs)} all claim the same predecessor"
                   for seqs in children.values() if len(seqs) > 1]
    leaf_at: dict[int, set[bytes]] = defaultdict(set)
    for row in rows:
        leaf_at[row.seq].add(row.leaf_hash)
    audit.broken_links = sorted({row.seq for row in rows
                                 if row.seq - 1 in leaf_at and row.prev_hash not in leaf_at[row.seq - 1]})


def _check_receipts(ledger: Ledger, rows: list[Row], receipts: Iterable[Mapping[str, Any]], audit: Audit) -> None:
    verifier = parse_verifier_key(ledger.verifier_key)
    stored = {(r.seq, r.entry_id, r.leaf_hash) for r in rows}
    roots: dict[int, set[bytes]] = defaultdict(set)
    for receipt in receipts:
        audit.receipts += 1
        seq, entry_id = int(receipt["seq"]), str(receipt["entry_id"])
        leaf = b64decode(receipt["leaf_hash"], size=32)
        if (seq, entry_id, leaf) not in stored:
            audit.lost.append(f"{entry_id} (receipt seq {seq})")
        try:
            cp = verify_checkpoint(receipt["checkpoint"], verifier, origin=ledger.origin)
            if cp.size != int(receipt["tree_size"]):
                raise ValueError(f"checkpoint size {cp.size} is not the receipt's tree size {receipt['tree_size']}")
            merkle.verify_inclusion(leaf, seq, cp.size, merkle.decode_proof(receipt["inclusion_proof"]), cp.root)
        except Exception as exc:
            audit.bad_receipts.append(f"receipt for seq {seq}: {exc}")
            continue
        roots[cp.size].add(cp.root)
    for size, stored_note in read_checkpoint_notes(ledger):
        roots[size].add(verify_checkpoint(stored_note, verifier, origin=ledger.origin).root)
    audit.checkpoints = len(roots)
    for size, seen in sorted(roots.items()):
        if len(seen) > 1:
            audit.forks.append(f"fork: {len(seen)} signed checkpoints of size {size} with different roots")
    if not roots:
        return
    final_size = max(roots)
    final_root = next(iter(roots[final_size]))
    audit.uncovered_tail = max(0, len({r.seq for r in rows}) - final_size)
    for size, seen in sorted(roots.items()):
        if size == final_size:
            continue
        try:
            _, _, proof = ledger.consistency_proof(size, final_size)
            for root in seen:
                merkle.verify_consistency(size, final_size, root, final_root, proof)
        except Exception as exc:
            audit.inconsistent.append(f"checkpoint {size} is not consistent with checkpoint {final_size}: {exc}")


def audit_log(ledger: Ledger, receipts: Iterable[Mapping[str, Any]] = ()) -> Audit:
    """Check the log behind ``ledger`` and the ``receipts`` (``Receipt.to_json()`` dicts) handed out for it."""
    rows = read_rows(ledger)
    audit = Audit(records=len(rows))
    _check_shape(rows, audit)
    _check_receipts(ledger, rows, receipts, audit)
    try:
        verify_database(ledger.db, verifier_key=ledger.verifier_key, expected_origin=ledger.origin)
    except IntegrityError as exc:
        audit.verify_error, audit.verify_seq = exc.message, exc.seq
    except Exception as exc:  # a forked scratch database can break the reader itself
        audit.verify_error = f"{type(exc).__name__}: {exc}"
    return audit


__all__ = ["Audit", "Row", "audit_log", "read_rows"]
