"""Integrity check of a stored ledger (``partsledger verify --db URL``).

Recomputes, from the stored bytes alone: every record's canonical form, leaf
hash, entry id and hash-chain link; every entry signature under the keys the
log itself registered (as of that record's position); every stored Merkle
node from its children; and the root of every stored checkpoint, whose
signature is checked against the log key. Memory stays flat in the size of
the ledger (records are streamed; the Merkle state is a compact range).

Large ledgers have their entry signatures checked by helper processes
(:class:`~ledger.sigpool.SignaturePool`) while this process parses and
chains the records; a signature failure is still reported for the first bad
record, before any later problem this process found meanwhile.

The first problem raises :class:`~ledger.errors.IntegrityError` naming the
first bad sequence number and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import nacl.exceptions
import nacl.signing
from sqlalchemy import func, inspect, select

from ledger import merkle
from ledger.checkpoint import parse_checkpoint_body
from ledger.entries import ZERO_HASH, Record, parse_record
from ledger.errors import IntegrityError, LedgerError, NotFound
from ledger.keys import SIGNATURE_PREFIXES, b64decode, key_id
from ledger.note import Verifier, open_note, parse_verifier_key
from ledger.sigpool import PARALLEL_MIN_RECORDS, SignaturePool, default_workers
from ledger.storage.db import Database
from ledger.storage.log_tables import CHECKPOINTS, NODES, RECORDS

PAGE = 2000
_ENTRY_PREFIX = SIGNATURE_PREFIXES["entry"]


@dataclass
class VerifyReport:
    records: int = 0
    checkpoints: int = 0
    nodes: int = 0
    signatures: int = 0
    root: bytes = merkle.EMPTY_ROOT
    origin: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class _Key:
    org: str
    public_key: bytes
    revoked_seq: int | None = None
    verifier: nacl.signing.VerifyKey | None = None


def bad_signature(seq: int) -> IntegrityError:
    return IntegrityError(f"record {seq}: bad signature", seq=seq)


class KeyTracker:
    """Follows org/key events so that each signature is judged by the keys valid at its position.

    With a ``pool`` the signature checks are queued there (see :func:`verify_database` for how the first
    failure is still found); without one each is checked at once.
    """

    def __init__(self, pool: SignaturePool | None = None) -> None:
        self.keys: dict[str, _Key] = {}
        self.pool = pool

    def check_and_update(self, record: Record) -> None:
        entry = record.entry
        seq = record.seq
        body = entry.body
        if seq == 0:
            if entry.type != "log.genesis":
                raise IntegrityError("record 0 is not log.genesis", seq=0)
            self._register(str(entry.org), body.get("public_keys"), seq)
        key = self.keys.get(entry.kid)
        if key is None or key.org != entry.org:
            raise IntegrityError(f"record {seq}: signed by key {entry.kid}, which is not a registered key of "
                                 f"org {entry.org} at this position", seq=seq)
        if key.revoked_seq is not None and key.revoked_seq < seq:
            raise IntegrityError(f"record {seq}: signed by key {entry.kid}, revoked at seq {key.revoked_seq}", seq=seq)
        message = _ENTRY_PREFIX + entry.canonical
        if self.pool is not None:
            failed = self.pool.add(seq, key.public_key, message, record.signed.signature)
            if failed is not None:
                raise bad_signature(failed)
        else:
            if key.verifier is None:
                key.verifier = nacl.signing.VerifyKey(key.public_key)
            try:
                key.verifier.verify(message, record.signed.signature)
            except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
                raise bad_signature(seq) from None
        if seq == 0:
            return
        if entry.type == "org.register":
            self._register(str(body.get("org_id")), body.get("public_keys"), seq)
        elif entry.type == "key.add":
            self._register(str(body.get("org_id")), [body.get("public_key")], seq)
        elif entry.type == "key.revoke":
            revoked = self.keys.get(str(body.get("kid")))
            if revoked is not None and revoked.revoked_seq is None:
                revoked.revoked_seq = seq

    def _register(self, org: str, raw_keys: object, seq: int) -> None:
        if not isinstance(raw_keys, list):
            raise IntegrityError(f"record {seq}: registers no keys", seq=seq)
        for raw in raw_keys:
            try:
                public = b64decode(raw, field="public_key", size=32)
            except LedgerError:
                raise IntegrityError(f"record {seq}: malformed public key", seq=seq) from None
            self.keys.setdefault(key_id(public), _Key(org=org, public_key=public))


# A server-side cursor on PostgreSQL (psycopg's default cursor would fetch every row at once); SQLite's
# cursor streams anyway. Either way only PAGE rows are held at a time.
_STREAM = {"stream_results": True, "yield_per": PAGE}


def _stream(db: Database, order: Callable[[], Any], columns: tuple[Any, ...]) -> Generator[Any, None, None]:
    with db.read() as session:
        result = session.execute(select(*columns).order_by(order()), execution_options=_STREAM)
        try:
            while True:
                rows = result.fetchmany(PAGE)
                if not rows:
                    return
                yield from (tuple(r) for r in rows)
        finally:  # a stream left before its end still closes its (server-side) cursor
            result.close()


def verify_database(db: Database, *, verifier_key: str | None = None, expected_origin: str | None = None,
                    progress: Callable[[int], None] | None = None,
                    log_public_key: bytes | None = None, signature_workers: int | None = None) -> VerifyReport:
    """Verify everything stored in ``db``; raise :class:`IntegrityError` at the first problem.

    Checkpoint signatures are checked with ``verifier_key`` (a C2SP verifier key, whose name must be the
    log's origin) or with ``log_public_key`` alone, whose key name is then each checkpoint's own origin
    line — so a holder of the key file need not know the origin; all checkpoints must still name one origin.

    ``signature_workers``: helper processes for the entry signatures (0: none, all in this process;
    default: :func:`~ledger.sigpool.default_workers` — none below :data:`PARALLEL_MIN_RECORDS` records).
    """
    report = VerifyReport()
    with db.read() as session:
        if not inspect(session.connection()).has_table(RECORDS.name):
            raise NotFound(f"no partsledger log in this database ({RECORDS.name} is missing: wrong URL or schema?)",
                           field="db")
        checkpoints = [
            (int(r[0]), bytes(r[1]), str(r[2]))
            for r in session.execute(
                select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
                .order_by(CHECKPOINTS.c.size)
            ).all()
        ]
        record_count = int(session.execute(select(func.count()).select_from(RECORDS)).scalar_one())
    verifier = parse_verifier_key(verifier_key) if verifier_key else None
    origin = expected_origin
    for (size, root, _), (size_before, root_before, _) in zip(checkpoints[1:], checkpoints, strict=False):
        if size == size_before and root != root_before:  # only possible once the primary key is gone
            raise IntegrityError(f"fork: two stored checkpoints of size {size} with different roots",
                                 seq=max(size - 1, 0), code="log_forked")
    for size, root, note_text in checkpoints:
        if verifier is not None or log_public_key is not None:
            try:
                by_key = verifier
                if by_key is None and log_public_key is not None:
                    by_key = Verifier.from_public_key(note_text.split("\n", 1)[0], log_public_key)
                assert by_key is not None
                note = open_note(note_text, [by_key])
            except LedgerError as exc:
                raise IntegrityError(f"checkpoint of size {size}: signature does not verify ({exc})",
                                     seq=max(size - 1, 0)) from None
            body_text = note.text
        else:
            body_text = note_text.split("\n\n", 1)[0] + "\n"
        try:
            cp = parse_checkpoint_body(body_text)
        except LedgerError as exc:
            raise IntegrityError(f"checkpoint of size {size}: malformed ({exc})", seq=max(size - 1, 0)) from None
        if cp.size != size or cp.root != root:
            raise IntegrityError(f"checkpoint of size {size}: stored size/root differ from its signed body",
                                 seq=max(size - 1, 0))
        if origin is None:
            origin = cp.origin
        elif cp.origin != origin:
            raise IntegrityError(f"checkpoint of size {size}: origin {cp.origin!r} is not {origin!r}",
                                 seq=max(size - 1, 0))
    report.origin = origin
    workers = default_workers(record_count) if signature_workers is None else signature_workers
    pool = SignaturePool(workers) if workers > 0 else None
    try:
        expected, compact = _verify_records(db, checkpoints, origin, KeyTracker(pool), report, progress)
        failed = pool.drain() if pool is not None else None
    except IntegrityError as exc:
        # A signature queued before this problem was found may have failed: the first bad record wins.
        failed = pool.drain() if pool is not None else None
        if failed is not None and (exc.seq is None or failed <= exc.seq):
            raise bad_signature(failed) from None
        raise
    finally:
        if pool is not None:
            pool.close()
    if failed is not None:
        raise bad_signature(failed)
    report.records = expected
    report.root = compact.root()
    report.nodes = _verify_nodes(db, expected)
    if progress is not None:
        progress(expected)
    return report


def _verify_records(db: Database, checkpoints: list[tuple[int, bytes, str]], origin: str | None, keys: KeyTracker,
                    report: VerifyReport, progress: Callable[[int], None] | None,
                    ) -> tuple[int, merkle.CompactRange]:
    """Stream and check every record; return the count and the compact range of their leaves."""
    pending = iter(checkpoints)
    next_cp = next(pending, None)
    compact = merkle.CompactRange()
    prev = ZERO_HASH
    expected = 0
    # Streams hold a read transaction open; close them however the check ends, not when GC gets to them.
    with closing(_stream(
        db, lambda: RECORDS.c.seq,
        (RECORDS.c.seq, RECORDS.c.entry_id, RECORDS.c.prev_hash, RECORDS.c.leaf_hash, RECORDS.c.record),
    )) as rows:
        for seq_o, entry_id_o, prev_o, leaf_o, raw_o in rows:
            seq = int(seq_o)
            if seq < expected:  # rows come in seq order, so this is a second record with the same seq
                raise IntegrityError(f"fork: record {seq} is stored more than once", seq=seq, code="log_forked")
            if seq != expected:
                raise IntegrityError(f"gap: record {expected} is missing (next stored record is {seq})", seq=expected)
            raw = bytes(raw_o)
            try:
                record = parse_record(raw)
            except LedgerError as exc:
                raise IntegrityError(f"record {seq}: stored bytes are not a valid canonical record ({exc})",
                                     seq=seq) from None
            if record.seq != seq:
                raise IntegrityError(f"record {seq}: its bytes say seq {record.seq} (records reordered or swapped)",
                                     seq=seq)
            if record.prev != prev:
                raise IntegrityError(f"record {seq}: broken hash chain (prev does not match record {seq - 1})", seq=seq)
            leaf = record.leaf_hash
            if bytes(leaf_o) != leaf or bytes(prev_o) != prev:
                raise IntegrityError(f"record {seq}: stored leaf/prev hash does not match its bytes", seq=seq)
            if str(entry_id_o) != record.entry.entry_id:
                raise IntegrityError(f"record {seq}: stored entry id does not match its entry", seq=seq)
            if origin is not None and record.entry.origin != origin:
                raise IntegrityError(f"record {seq}: entry origin {record.entry.origin!r} is not this log", seq=seq)
            keys.check_and_update(record)
            report.signatures += 1
            compact.append(leaf)
            prev = leaf
            expected += 1
            while next_cp is not None and next_cp[0] == compact.size:
                if compact.root() != next_cp[1]:
                    raise IntegrityError(f"checkpoint of size {next_cp[0]}: root does not match the records "
                                         f"(first differing record at or before {seq})", seq=seq)
                report.checkpoints += 1
                next_cp = next(pending, None)
            if progress is not None and expected % PAGE == 0:
                progress(expected)
    if next_cp is not None:
        raise IntegrityError(
            f"log shrunk: a signed checkpoint covers {next_cp[0]} records but only {expected} are stored "
            f"(record {expected} onwards is missing)", seq=expected, code="log_shrunk")
    return expected, compact


def _verify_nodes(db: Database, size: int) -> int:
    """Check every stored Merkle node against its children (level 0 against the records)."""
    checked = 0
    level = 0
    below = _stream(db, lambda: RECORDS.c.seq, (RECORDS.c.seq, RECORDS.c.leaf_hash))
    stored: Generator[Any, None, None] | None = None
    try:
        while (size >> level) > 0:
            count = size >> level
            stored = _stream_level(db, level)
            expected_idx = 0
            child_iter = below
            for idx_o, digest_o in stored:
                idx = int(idx_o)
                if idx != expected_idx:
                    raise IntegrityError(f"Merkle node ({level}, {expected_idx}) is missing",
                                         seq=expected_idx << level)
                if level == 0:
                    child = next(child_iter, None)
                    want = bytes(child[1]) if child is not None else None
                else:
                    left = next(child_iter, None)
                    right = next(child_iter, None)
                    want = (merkle.node_hash(bytes(left[1]), bytes(right[1]))
                            if left is not None and right is not None else None)
                if want != bytes(digest_o):
                    raise IntegrityError(f"Merkle node ({level}, {idx}) does not match its children",
                                         seq=idx << level)
                expected_idx += 1
                checked += 1
            if expected_idx != count:
                raise IntegrityError(f"Merkle node ({level}, {expected_idx}) is missing", seq=expected_idx << level)
            below.close()  # a level with an odd count is not read to its end
            below = _stream_level(db, level)
            level += 1
        return checked
    finally:  # each stream holds a read transaction: close them however the check ends
        below.close()
        if stored is not None:
            stored.close()


def _stream_level(db: Database, level: int) -> Generator[Any, None, None]:
    with db.read() as session:
        result = session.execute(
            select(NODES.c.idx, NODES.c.hash).where(NODES.c.level == level).order_by(NODES.c.idx),
            execution_options=_STREAM,
        )
        try:
            while True:
                rows = result.fetchmany(PAGE)
                if not rows:
                    return
                for row in rows:
                    yield (row[0], row[1])
        finally:
            result.close()


__all__ = ["PARALLEL_MIN_RECORDS", "KeyTracker", "VerifyReport", "verify_database"]
