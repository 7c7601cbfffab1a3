"""The verifiable log (SPEC §3.2–§3.6): append, receipts, checkpoints, proofs.

:class:`Ledger` is the one place where entries become records. An append
runs in one writing transaction that holds the append lock from reading the
head to committing:

1. read the head (last seq and leaf hash) inside the lock — never cached;
2. for each entry: drop exact duplicates (same entry id → the original
   receipt), check origin, key, signature and clock skew, run the event
   handler (policy + projections), build the record, chain it, store it and
   its new Merkle nodes;
3. compute the new root from stored complete subtrees, sign a checkpoint
   (C2SP signed note) and store it;
4. commit; only then are receipts handed out.

Records and Merkle nodes of a batch are written with one multi-row insert
each after the loop (handlers never read the log tables, and the node cache
already holds the new nodes), and receipts of new entries are built from
what the loop computed, so a batch of n entries costs O(1) statements for
the log tables instead of O(n). The org and key rows an entry is checked
against are kept referenced for the whole transaction so that the session's
(weakly referencing) identity map serves the repeated look-ups of the same
org and key instead of a SELECT each time.

Concurrent single appends (the HTTP API runs each request in its own worker
thread) are combined by :mod:`ledger.group_commit` into batches that share
one transaction and one fsync; each caller still gets its receipt only after
the commit that made its entry durable, or the error that rejected it alone.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select
from sqlmodel import Session, SQLModel, col

from ledger import merkle
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.domain import Context, FlagNote, get_handler
from ledger.domain.registry import lookups_of
from ledger.entries import ZERO_HASH, Entry, Record, SignedEntry, build_record, parse_record, parse_time, utc_now
from ledger.errors import IntegrityError, InvalidInput, LedgerError, NotFound, PolicyRejected, SignatureError
from ledger.gc_pause import gc_paused
from ledger.group_commit import GroupCommitter, Rejected
from ledger.keys import SIGNATURE_SIZE, KeyPair, b64encode, bad_signature, check_signature_size, signed_message
from ledger.note import Signer
from ledger.sigpool import PARALLEL_MIN_BATCH, SignaturePool, shared_pool, verify_items
from ledger.storage.bulk import insert_rows, insert_tuples
from ledger.storage.db import Database
from ledger.storage.domain_tables import LedgerFlag, Org, OrgKey
from ledger.storage.log_tables import CHECKPOINTS, NODES, RECORDS
from ledger.storage.state import StateStore


@dataclass(frozen=True)
class ClockPolicy:
    """How far an actor's claimed time may differ from the server's logging time."""

    max_future: timedelta = timedelta(minutes=10)
    max_past: timedelta = timedelta(days=30)  # workshops offline for weeks still sync


@dataclass(frozen=True)
class Receipt:
    """Portable evidence that an entry is in the log (SPEC §3.6)."""

    seq: int
    entry_id: str
    leaf_hash: bytes
    tree_size: int
    checkpoint: str
    inclusion_proof: list[bytes]
    duplicate: bool = False
    flags: list[FlagNote] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "entry_id": self.entry_id,
            "leaf_hash": b64encode(self.leaf_hash),
            "tree_size": self.tree_size,
            "checkpoint": self.checkpoint,
            "inclusion_proof": merkle.encode_proof(self.inclusion_proof),
            "duplicate": self.duplicate,
            "flags": [
                {"kind": f.kind, "subject": f.subject, "message": f.message, "org_id": f.org_id} for f in self.flags
            ],
        }


class BatchRejected(LedgerError):
    """One entry of a batch was rejected; nothing of the batch was appended."""

    def __init__(self, index: int, error: LedgerError) -> None:
        super().__init__(f"entry {index}: {error.message}", code=error.code, field=error.field,
                         details={"index": index, **error.details})
        self.index = index
        self.error = error


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str


# Statements of the append path, built once (building one costs more than running it on SQLite).
# The order of the value tuples an append builds for these tables (their column order).
_RECORD_COLUMNS = ("seq", "entry_id", "prev_hash", "leaf_hash", "entry_type", "org_id", "logged_at", "record")
_NODE_COLUMNS = ("level", "idx", "hash")
_HEAD = select(RECORDS.c.seq, RECORDS.c.leaf_hash).order_by(RECORDS.c.seq.desc()).limit(1)
_SEQ_OF_ENTRIES = select(RECORDS.c.entry_id, RECORDS.c.seq).where(
    RECORDS.c.entry_id.in_(bindparam("ids", expanding=True)))
_NODES_AT_LEVEL = select(NODES.c.level, NODES.c.idx, NODES.c.hash).where(
    NODES.c.level == bindparam("level"), NODES.c.idx.in_(bindparam("idxs", expanding=True)))


class CommittedNodes:
    """Merkle nodes known to be committed, shared by every transaction of one :class:`Ledger`.

    A stored node never changes (position ``(level, index)`` of an append-only tree has one hash
    forever), so a node read from the database or written by a committed batch can be served from
    memory to any later transaction. Appends keep needing the same few: the right edge of the tree
    (the siblings of the next leaves) and the subtrees the newest receipts' proofs are made of;
    without this, every small batch read them with several queries. Least recently used nodes are
    dropped beyond ``capacity``.
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.capacity = capacity
        self._nodes: OrderedDict[merkle.NodeKey, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, keys: Sequence[merkle.NodeKey], into: dict[merkle.NodeKey, bytes]) -> None:
        """Copy the known ones of ``keys`` into ``into``."""
        with self._lock:
            nodes = self._nodes
            for key in keys:
                found = nodes.get(key)
                if found is not None:
                    nodes.move_to_end(key)
                    into[key] = found

    def put(self, items: Iterable[tuple[merkle.NodeKey, bytes]]) -> None:
        with self._lock:
            nodes = self._nodes
            nodes.update(items)
            while len(nodes) > self.capacity:
                nodes.popitem(last=False)


class _NodeCache:
    """A per-transaction view of stored Merkle nodes plus those written in this transaction."""

    def __init__(self, session: Session, committed: CommittedNodes | None = None) -> None:
        self.session = session
        self.committed = committed
        self.nodes: dict[merkle.NodeKey, bytes] = {}
        self.ranges: dict[tuple[int, int], bytes] = {}

    def get(self, keys: Sequence[merkle.NodeKey]) -> Mapping[merkle.NodeKey, bytes]:
        missing = [k for k in dict.fromkeys(keys) if k not in self.nodes]
        if missing and self.committed is not None:
            self.committed.take(missing, self.nodes)
            missing = [k for k in missing if k not in self.nodes]
        if missing:
            with self.session.no_autoflush:  # log tables only: the handlers' staged rows need not be written
                loaded = self._load(missing)
            if self.committed is not None:  # visible to this transaction: committed
                self.committed.put(loaded)
        return {k: self.nodes[k] for k in keys if k in self.nodes}

    def range_hash(self, lo: int, hi: int) -> bytes:
        """RFC 6962 MTH of leaves ``[lo, hi)``: a stored node when the range is a complete subtree, else
        split as the RFC does. Memoised, so the proofs of a batch's receipts share their common ranges."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            level = n.bit_length() - 1
            key = (level, lo >> level)
            found = self.nodes.get(key) or self.get([key]).get(key)
            if found is None:
                raise IntegrityError(f"Merkle node (level={key[0]}, index={key[1]}) is missing from the store")
            return found
        memo = self.ranges.get((lo, hi))
        if memo is None:
            k = 1 << ((n - 1).bit_length() - 1)
            memo = merkle.node_hash(self.range_hash(lo, lo + k), self.range_hash(lo + k, hi))
            self.ranges[(lo, hi)] = memo
        return memo

    def inclusion_proofs(self, first: int, last: int, size: int) -> list[list[bytes]]:
        """The inclusion proofs of leaves ``first .. last-1`` in the tree of ``size``, in one walk down the
        tree: each sibling hash is found once and added to every proof that needs it."""
        proofs: list[list[bytes]] = [[] for _ in range(last - first)]

        def walk(lo: int, hi: int, a: int, b: int) -> None:  # targets [a, b) inside the subtree [lo, hi)
            while hi - lo > 1 and a < b:
                mid = lo + (1 << ((hi - lo - 1).bit_length() - 1))
                if a < mid and b > mid:  # targets on both sides: the left side is done by recursion
                    left = self.range_hash(lo, mid)
                    right = self.range_hash(mid, hi)
                    for proof in proofs[a - first:mid - first]:
                        proof.append(right)
                    for proof in proofs[mid - first:b - first]:
                        proof.append(left)
                    walk(lo, mid, a, mid)
                    lo, a = mid, mid
                elif b <= mid:
                    right = self.range_hash(mid, hi)
                    for proof in proofs[a - first:b - first]:
                        proof.append(right)
                    hi = mid
                else:
                    left = self.range_hash(lo, mid)
                    for proof in proofs[a - first:b - first]:
                        proof.append(left)
                    lo = mid

        walk(0, size, first, last)
        for proof in proofs:
            proof.reverse()
        return proofs

    def _load(self, missing: list[merkle.NodeKey]) -> list[tuple[merkle.NodeKey, bytes]]:
        # One ``level = L AND idx IN (...)`` term per level, OR-ed: each term is a primary-key range probe.
        # (A row-value ``(level, idx) IN (...)`` makes SQLite scan the whole node table: O(n) proofs.)
        loaded: list[tuple[merkle.NodeKey, bytes]] = []
        for start in range(0, len(missing), 400):
            by_level: dict[int, list[int]] = {}
            for level, idx in missing[start:start + 400]:
                by_level.setdefault(level, []).append(idx)
            conn = self.session.connection()
            if len(by_level) == 1:
                ((level, idxs),) = by_level.items()
                rows = conn.execute(_NODES_AT_LEVEL, {"level": level, "idxs": idxs}).all()
            else:
                terms = [and_(NODES.c.level == level, NODES.c.idx.in_(idxs)) for level, idxs in by_level.items()]
                rows = conn.execute(select(NODES.c.level, NODES.c.idx, NODES.c.hash).where(or_(*terms))).all()
            for level, idx, digest in rows:
                key, value = (int(level), int(idx)), bytes(digest)
                self.nodes[key] = value
                loaded.append((key, value))
        return loaded


class _Verify:
    """Checks the signature of the batch entry at ``index``: at once, or by queueing it in ``pool`` (a helper
    process verifies while this thread goes on; the batch drains the pool before it commits).

    Entries signed by a key already stored are queued up front (:meth:`early`), before the batch's look-ups
    and admission, so the helper starts at once; the others when their turn comes. Signatures may therefore
    be answered out of entry order: :meth:`first_bad` finds the first entry whose signature fails.
    """

    __slots__ = ("_first_bad", "index", "pool", "queued", "reached")

    def __init__(self, pool: SignaturePool | None, index: int) -> None:
        self.pool = pool
        self.index = index
        self.reached = False  # whether the entry at ``index`` got as far as its signature check
        self.queued: dict[int, tuple[bytes, bytes, bytes]] = {}  # index -> (public key, message, signature)
        self._first_bad: int | None = None

    def early(self, index: int, item: SignedEntry, public_key: bytes) -> None:
        """Queue the signature of the entry at ``index`` ahead of its admission (``public_key``: its key's)."""
        if self.pool is not None and len(item.signature) == SIGNATURE_SIZE:  # a bad size is named at admission
            self._queue(index, item, public_key)

    def __call__(self, item: SignedEntry, public_key: bytes) -> None:
        self.reached = True
        if self.pool is None:
            item.verify(public_key)
            return
        known = self.queued.get(self.index)
        if known is not None and known[0] == public_key:
            failed = self.pool.failed
        else:
            check_signature_size(item.signature)
            failed = self._queue(self.index, item, public_key)
        if failed is not None:
            first = self.first_bad(failed)
            if first <= self.index:  # a later entry's failure waits for that entry's turn (or the end)
                raise BatchRejected(first, bad_signature())

    def _queue(self, index: int, item: SignedEntry, public_key: bytes) -> int | None:
        assert self.pool is not None
        message = signed_message("entry", item.entry.canonical)
        self.queued[index] = (public_key, message, item.signature)
        return self.pool.add(index, public_key, message, item.signature)

    def first_bad(self, failed: int) -> int:
        """The first entry (by index) whose signature fails, given the pool's first failure in the order
        queued (``failed``): an entry queued later may come before it. Checked here, on this error path."""
        if self._first_bad is None or failed < self._first_bad:
            self._first_bad = failed
            for index in sorted(i for i in self.queued if i < failed):
                public, message, signature = self.queued[index]
                if verify_items([(public, message, signature)]) >= 0:
                    self._first_bad = index
                    break
        return self._first_bad


def rejected_entry(exc: BaseException) -> Rejected | None:
    """Group commit's view of a batch failure: the entry a :class:`BatchRejected` names, else ``None``."""
    return Rejected(exc.index, exc.error) if isinstance(exc, BatchRejected) else None


class Ledger:
    """The log service. Thread-safe: every call opens its own transaction (concurrent
    :meth:`append` calls share one, see :mod:`ledger.group_commit`)."""

    def __init__(self, db: Database, *, origin: str, log_key: KeyPair,
                 clock: Callable[[], str] = utc_now, clock_policy: ClockPolicy | None = None) -> None:
        if not origin or "\n" in origin:
            raise InvalidInput("the log origin must be one non-empty line")
        self.db = db
        self.origin = origin
        self._signer = Signer(origin, log_key.signing_key)
        self.clock = clock
        self.clock_policy = clock_policy or ClockPolicy()
        self._appends: GroupCommitter[SignedEntry, Receipt] = GroupCommitter(self.append_batch, rejected_entry)
        self._nodes = CommittedNodes()

    # keys -------------------------------------------------------------------
    @property
    def verifier_key(self) -> str:
        """The log's public key in C2SP note verifier-key format."""
        return self._signer.verifier_key()

    # appending -----------------------------------------------------------------
    def append(self, signed: SignedEntry) -> Receipt:
        """Append one entry; raises the :class:`LedgerError` that rejected it.

        Durable when it returns. Entries appended concurrently by other threads may share the
        transaction and the checkpoint (group commit); the receipt is the same either way.
        """
        return self._appends.submit(signed)

    def append_future(self, signed: SignedEntry) -> Future[Receipt]:
        """:meth:`append` without blocking: the future gets the receipt once the entry is durable, or
        the :class:`LedgerError` that rejected it (for event loops: ``asyncio.wrap_future``)."""
        return self._appends.submit_future(signed)

    def append_batch(self, items: Sequence[SignedEntry]) -> list[Receipt]:
        """Append ``items`` in order in one transaction, all or nothing.

        Raises :class:`BatchRejected` naming the first rejected entry; then nothing is appended.
        """
        if not items:
            raise InvalidInput("a batch needs at least one entry", code="invalid_entry")
        helpers = shared_pool() if len(items) >= PARALLEL_MIN_BATCH else nullcontext(None)
        with gc_paused(), helpers as pool, self.db.write() as session:
            state = StateStore(session)
            cache = _NodeCache(session, self._nodes)
            conn = session.connection()
            head = conn.execute(_HEAD).first()
            size = 0 if head is None else int(head[0]) + 1
            prev = ZERO_HASH if head is None else bytes(head[1])
            ids = [item.entry_id for item in items]
            known: dict[str, int] = {}
            for start in range(0, len(ids), 500):
                rows = conn.execute(_SEQ_OF_ENTRIES, {"ids": ids[start:start + 500]}).all()
                known.update({str(r[0]): int(r[1]) for r in rows})
            verify = _Verify(pool, 0)  # told each entry's index in turn
            fresh = [item.entry for item in items if item.entry_id not in known]
            if pool is not None and size > 0:
                # The helper starts on the signatures by keys already stored while this thread looks up the rest.
                state.staging.prefetch(OrgKey, [entry.kid for entry in fresh])
                for index, item in enumerate(items):
                    key = None if item.entry_id in known else state.get_key(item.entry.kid)
                    if key is not None and key.revoked_seq is None:
                        verify.early(index, item, bytes(key.public_key))
            if len(items) > 1:
                self._prefetch(state, fresh)
            placed: list[tuple[int, bool, list[FlagNote]]] = []
            record_rows: list[tuple[Any, ...]] = []  # in _RECORD_COLUMNS order
            node_rows: list[tuple[int, int, bytes]] = []
            written: list[tuple[merkle.NodeKey, bytes]] = []
            new_leaves: dict[int, tuple[str, bytes]] = {}
            for index, item in enumerate(items):
                if item.entry_id in known:
                    placed.append((known[item.entry_id], True, []))
                    continue
                logged = self.clock()
                try:
                    verify.index, verify.reached = index, False
                    ctx = self._admit(state, item, size, logged, verify)
                except BatchRejected:
                    raise
                except LedgerError as exc:
                    failed = None if pool is None else pool.drain()
                    bad = None if failed is None else verify.first_bad(failed)
                    # Checked in order, an earlier entry's signature (or this one's, if its check came before
                    # this error) would have failed first.
                    if bad is not None and (bad < index or (bad == index and verify.reached)):
                        raise BatchRejected(bad, bad_signature()) from None
                    raise BatchRejected(index, exc) from None
                record = build_record(size, prev, logged, item)
                leaf = record.leaf_hash
                record_rows.append((size, item.entry_id, prev, leaf, item.entry.type, item.entry.org, logged,
                                    record.canonical))
                new_nodes = merkle.nodes_for_append(size, leaf, cache.get)
                node_rows.extend((level, idx, h) for (level, idx), h in new_nodes)
                written.extend(new_nodes)
                cache.nodes.update(new_nodes)
                known[item.entry_id] = size
                new_leaves[size] = (item.entry_id, leaf)
                placed.append((size, False, ctx.flags))
                prev = leaf
                size += 1
            # The helper (if any) is still checking signatures: the writes below run alongside, and are
            # rolled back if one fails. Nothing leaves this transaction before the check is complete.
            if pool is not None:
                pool.flush()
            try:
                state.staging.write(attach=False)  # the handlers' projection rows: one insert per table
                note = ""
                if record_rows:
                    insert_tuples(conn, RECORDS, _RECORD_COLUMNS, record_rows)
                    insert_tuples(conn, NODES, _NODE_COLUMNS, node_rows)
                    root = merkle.root_hash(size, cache.get)
                    note = sign_checkpoint(Checkpoint(self.origin, size, root), self._signer)
                    insert_rows(conn, CHECKPOINTS, [{"size": size, "root": root, "note": note,
                                                     "created_at": self.clock()}])
                receipts = []
                first_new = size - len(new_leaves)
                proofs = cache.inclusion_proofs(first_new, size, size)
                for seq, duplicate, flags in placed:
                    if not duplicate:
                        entry_id, leaf = new_leaves[seq]
                        proof = proofs[seq - first_new]
                        receipts.append(Receipt(seq=seq, entry_id=entry_id, leaf_hash=leaf, tree_size=size,
                                                checkpoint=note, inclusion_proof=proof, duplicate=False,
                                                flags=flags))
                    else:
                        receipts.append(self._receipt(session, cache, seq, duplicate, flags))
            finally:  # a bad signature is the error to report, whatever else went wrong after it
                bad = None if pool is None else pool.drain()
                if bad is not None:
                    raise BatchRejected(verify.first_bad(bad), bad_signature())
        self._nodes.put(written)  # committed now
        return receipts

    @staticmethod
    def _prefetch(state: StateStore, entries: list[Entry]) -> None:
        """Load (or learn the absence of) every row the batch's admission and handlers look up by key."""
        wanted: dict[type[SQLModel], list[Any]] = {Org: [], OrgKey: []}
        for entry in entries:
            wanted[Org].append(entry.org)
            wanted[OrgKey].append(entry.kid)
            for cls, pk in lookups_of(entry):
                wanted.setdefault(cls, []).append(pk)
        for cls, pks in wanted.items():
            state.staging.prefetch(cls, pks)

    def _admit(self, state: StateStore, item: SignedEntry, seq: int, logged: str, verify: _Verify) -> Context:
        entry = item.entry
        if entry.origin != self.origin:
            raise InvalidInput(f"entry.origin {entry.origin!r} is not this log ({self.origin!r})",
                               code="wrong_origin", field="origin")
        if seq == 0:
            if entry.type != "log.genesis":
                raise PolicyRejected("the first record must be log.genesis", code="role_forbidden")
            keys = entry.body.get("public_keys")
            public = None
            if isinstance(keys, list):
                from ledger.keys import b64decode, key_id

                for raw in keys:
                    candidate = b64decode(raw, field="body.public_keys[]", size=32)
                    if key_id(candidate) == entry.kid:
                        public = candidate
            if public is None:
                raise SignatureError("genesis must be signed by a key it registers", code="unknown_key", field="kid")
            item.verify(public)
        else:
            org = state.get_org(entry.org)
            if org is None:
                raise SignatureError(f"org {entry.org} is not registered", code="unknown_org", field="org")
            key = state.get_key(entry.kid)
            if key is None or key.org_id != entry.org:
                raise SignatureError(f"key {entry.kid} is not a registered key of org {entry.org}",
                                     code="unknown_key", field="kid")
            if key.revoked_seq is not None:
                raise SignatureError(f"key {entry.kid} was revoked at seq {key.revoked_seq}", code="revoked_key",
                                     field="kid")
            verify(item, bytes(key.public_key))
        self._check_clock(entry.time, logged)
        ctx = Context(state=state, entry=entry, seq=seq, logged=logged)
        get_handler(entry.type)(ctx)
        return ctx

    def _check_clock(self, claimed: str, logged: str) -> None:
        claimed_at = parse_time(claimed, field="entry.time")
        logged_at = parse_time(logged, field="logged")
        if claimed_at > logged_at + self.clock_policy.max_future:
            raise PolicyRejected(
                f"entry.time {claimed} is more than {self.clock_policy.max_future} ahead of the log's clock ({logged})",
                code="clock_skew", field="time")
        if claimed_at < logged_at - self.clock_policy.max_past:
            raise PolicyRejected(
                f"entry.time {claimed} is more than {self.clock_policy.max_past.days} days behind the log's clock",
                code="clock_skew", field="time")

    def _receipt(self, session: Session, cache: _NodeCache, seq: int, duplicate: bool,
                 flags: list[FlagNote]) -> Receipt:
        row = session.execute(select(RECORDS.c.entry_id, RECORDS.c.leaf_hash).where(RECORDS.c.seq == seq)).one()
        cp = session.execute(
            select(CHECKPOINTS.c.size, CHECKPOINTS.c.note).where(CHECKPOINTS.c.size > seq)
            .order_by(CHECKPOINTS.c.size).limit(1)
        ).one()
        if duplicate:
            flag_rows = session.execute(
                select(LedgerFlag).where(col(LedgerFlag.entry_id) == row[0]).order_by(col(LedgerFlag.id))
            ).scalars().all()
            flags = [FlagNote(kind=f.kind, subject=f.subject, message=f.message, org_id=f.org_id) for f in flag_rows]
        tree_size = int(cp[0])
        return Receipt(
            seq=seq,
            entry_id=str(row[0]),
            leaf_hash=bytes(row[1]),
            tree_size=tree_size,
            checkpoint=str(cp[1]),
            inclusion_proof=merkle.inclusion_proof(seq, tree_size, cache.get),
            duplicate=duplicate,
            flags=flags,
        )

    # reading -------------------------------------------------------------------
    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self.db.read() as session:
            row = session.execute(
                select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
                .order_by(CHECKPOINTS.c.size.desc()).limit(1)
            ).first()
        return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]))

    def checkpoint_at(self, size: int) -> StoredCheckpoint:
        with self.db.read() as session:
            row = session.execute(
                select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
                .where(CHECKPOINTS.c.size == size)
            ).first()
        if row is None:
            raise NotFound(f"no checkpoint of size {size}", field="size")
        return StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]))

    def size(self) -> int:
        cp = self.latest_checkpoint()
        return 0 if cp is None else cp.size

    def record(self, seq: int) -> Record:
        with self.db.read() as session:
            raw = session.execute(select(RECORDS.c.record).where(RECORDS.c.seq == seq)).scalar_one_or_none()
        if raw is None:
            raise NotFound(f"no record with seq {seq}", field="seq")
        return parse_record(bytes(raw))

    def raw_records(self, start: int, limit: int) -> list[tuple[int, bytes, bytes]]:
        """``(seq, canonical record bytes, leaf hash)`` for ``start <= seq < start+limit``."""
        with self.db.read() as session:
            rows = session.execute(
                select(RECORDS.c.seq, RECORDS.c.record, RECORDS.c.leaf_hash)
                .where(RECORDS.c.seq >= start).order_by(RECORDS.c.seq).limit(limit)
            ).all()
        return [(int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]

    def iter_raw_records(self, page: int = 1000) -> Iterator[tuple[int, bytes, bytes]]:
        start = 0
        while True:
            rows = self.raw_records(start, page)
            if not rows:
                return
            yield from rows
            start = rows[-1][0] + 1

    def seq_of(self, entry_id: str) -> int:
        with self.db.read() as session:
            seq = session.execute(select(RECORDS.c.seq).where(RECORDS.c.entry_id == entry_id)).scalar_one_or_none()
        if seq is None:
            raise NotFound(f"no entry with id {entry_id}", field="entry_id")
        return int(seq)

    def _check_size(self, size: int, current: int, name: str) -> None:
        if size < 0:
            raise InvalidInput(f"{name} must be ≥ 0", code="invalid_field", field=name)
        if size > current:
            raise InvalidInput(f"{name}={size} is beyond the current tree size {current}", code="invalid_field",
                               field=name)

    def inclusion_proof(self, seq: int, size: int | None = None) -> tuple[int, bytes, list[bytes]]:
        """``(tree_size, leaf_hash, proof)`` for record ``seq`` in the tree of ``size`` (default: latest)."""
        with self.db.read() as session:
            current = self._current_size(session)
            tree_size = current if size is None else size
            self._check_size(tree_size, current, "size")
            if not 0 <= seq < tree_size:
                raise InvalidInput(f"seq must be in [0, {tree_size})", code="invalid_field", field="seq")
            cache = _NodeCache(session, self._nodes)
            leaf = cache.get([(0, seq)]).get((0, seq))
            if leaf is None:
                raise NotFound(f"no record with seq {seq}", field="seq")
            return tree_size, leaf, merkle.inclusion_proof(seq, tree_size, cache.get)

    def consistency_proof(self, old: int, new: int | None = None) -> tuple[int, int, list[bytes]]:
        with self.db.read() as session:
            current = self._current_size(session)
            new_size = current if new is None else new
            self._check_size(new_size, current, "to")
            self._check_size(old, new_size, "from")
            return old, new_size, merkle.consistency_proof(old, new_size, _NodeCache(session, self._nodes).get)

    def root_at(self, size: int) -> bytes:
        with self.db.read() as session:
            current = self._current_size(session)
            self._check_size(size, current, "size")
            return merkle.root_hash(size, _NodeCache(session, self._nodes).get)

    @staticmethod
    def _current_size(session: Session) -> int:
        size = session.execute(
            select(CHECKPOINTS.c.size).order_by(CHECKPOINTS.c.size.desc()).limit(1)
        ).scalar_one_or_none()
        return 0 if size is None else int(size)


__all__ = ["BatchRejected", "ClockPolicy", "Ledger", "Receipt", "StoredCheckpoint", "rejected_entry"]
