"""``partsledger audit``: check a whole remote ledger without trusting its server.

For a target checkpoint (the server's latest, accepted only if it extends the
newest one this client has seen — :mod:`clients.witness`) the auditor
downloads every record page by page and checks, for each one:

* the bytes are canonical JSON, hash to the served leaf hash, and say the seq
  they are served as (:func:`clients.sdk.check_served_record`);
* ``prev`` is the leaf hash of the record before (the hash chain; genesis
  links to 32 zero bytes);
* the entry names this log's origin and is signed by a key that the log
  itself registered for that org earlier and had not revoked (genesis is
  self-signed by a key it registers);

then folds the leaf hashes into a :class:`~ledger.merkle.CompactRange` and
requires the result to equal the checkpoint's root. Finally it compares the
facts it derived from the records — orgs and their keys, every part's
commissioning facts, every installation — with what the server's API says.

Memory stays flat: the page being checked and the next one (fetched by a
background thread while this one is checked, so the server's work overlaps
the auditor's), an O(log n) frontier, small bounded caches of keys, and the
derived facts in a small SQLite file (stdlib ``sqlite3``; nothing of the server's
storage layer). That file is also the resume point: after each page the
position, chain head, frontier and facts are committed together, so a killed
audit continues where it stopped and still checks everything exactly once.

The first problem found raises :class:`~ledger.errors.IntegrityError` naming
the first bad sequence number. Long audits check the entry signatures in
helper processes (:class:`~ledger.sigpool.SignaturePool`) while this one
parses and chains; every signature of a page is answered before the page's
position is committed, and a signature failure is preferred to any later
problem found meanwhile, so the first bad record is still the one named.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import nacl.exceptions
import nacl.signing

from clients.sdk import PartsLedger, ServedRecord, VerifiedCheckpoint
from ledger import merkle
from ledger.checkpoint import verify_checkpoint
from ledger.entries import ZERO_HASH
from ledger.errors import IntegrityError, LedgerError, NotFound, ProofError
from ledger.keys import SIGNATURE_PREFIXES, b64decode, b64encode, key_id
from ledger.sigpool import PARALLEL_MIN_RECORDS, SignaturePool, default_workers

Progress = Callable[[int, int], None]
"""``(records checked, records to check)`` after each page."""

_CACHE_MAX = 4096  # keys held in memory at most (a cache, cleared when full: memory stays flat)
_ENTRY_PREFIX = SIGNATURE_PREFIXES["entry"]

_INSERT_PART = ("INSERT INTO parts (gtin, serial, lot, category, commissioned_by, commissioned_seq) "
                "VALUES (?, ?, ?, ?, ?, ?)")
_INSERT_INSTALL = "INSERT INTO installs VALUES (?, ?, ?, ?, ?)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (org_id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
                                 registered_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS keys (kid TEXT PRIMARY KEY, org_id TEXT NOT NULL, public_key BLOB NOT NULL,
                                 added_seq INTEGER NOT NULL, revoked_seq INTEGER);
CREATE TABLE IF NOT EXISTS parts (gtin TEXT NOT NULL, serial TEXT NOT NULL, lot TEXT, category TEXT,
                                  commissioned_by TEXT NOT NULL, commissioned_seq INTEGER NOT NULL,
                                  PRIMARY KEY (gtin, serial));
CREATE TABLE IF NOT EXISTS installs (seq INTEGER PRIMARY KEY, gtin TEXT NOT NULL, serial TEXT NOT NULL,
                                     vehicle TEXT NOT NULL, workshop TEXT NOT NULL);
"""


def _by_seq(parts: Iterator[tuple[Any, ...]]) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """``(commissioned_seq, gtin, serial, ...)`` rows, in seq order, grouped by seq."""
    group: list[tuple[Any, ...]] = []
    for part in parts:
        if group and part[0] != group[0][0]:
            yield group[0][0], group
            group = []
        group.append(part)
    if group:
        yield group[0][0], group


def _served_part(item: dict[str, Any]) -> tuple[Any, ...]:
    """A listed part as ``(commissioned_seq, gtin, serial, lot, category, commissioned_by)``."""
    seq = item.get("commissioned_seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise IntegrityError(f"the server lists part {item.get('gtin')}/{item.get('serial')} without an integer "
                             "commissioned_seq")
    return seq, item.get("gtin"), item.get("serial"), item.get("lot"), item.get("category"), item.get("commissioned_by")


def _unlisted(gtin: Any, serial: Any, seq: int) -> IntegrityError:
    return IntegrityError(f"the server does not list part {gtin}/{serial}, commissioned at seq {seq}", seq=seq)


def _commissioning_mismatch(logged: tuple[Any, ...], part: tuple[Any, ...]) -> IntegrityError | None:
    """The error if the log's commissioning facts ``(lot, category, commissioned_by, seq)`` of a part differ
    from those the server lists (:func:`_served_part`); a category the log leaves out is not compared."""
    seq, gtin, serial, lot, category, by = part
    served = (lot, category if logged[1] is not None else None, by, seq)
    if served == logged:
        return None
    return IntegrityError(f"part {gtin}/{serial}: the log commissions it as {logged}, the server says {served}",
                          seq=logged[3])


@dataclass(frozen=True)
class AuditReport:
    origin: str
    size: int
    root: bytes
    checked_now: int
    resumed_from: int
    orgs: int
    keys: int
    compared: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"ok": True, "origin": self.origin, "records": self.size, "root": self.root.hex(),
                "checked_now": self.checked_now, "resumed_from": self.resumed_from, "orgs": self.orgs,
                "keys": self.keys, "compared": self.compared}


class AuditState:
    """The auditor's resumable position and derived facts, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self.db.execute("BEGIN")

    def close(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()

    def get(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, name: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def commit(self) -> None:
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    def frontier(self) -> merkle.CompactRange:
        saved = self.get("frontier")
        compact = merkle.CompactRange()
        if saved:
            data = json.loads(saved)
            compact._size = int(data["size"])
            compact._hashes = [b64decode(h, field="frontier", size=32) for h in data["hashes"]]
        return compact

    def save_frontier(self, compact: merkle.CompactRange) -> None:
        self.put("frontier", json.dumps({"size": compact.size, "hashes": [b64encode(h) for h in compact._hashes]}))

    def key(self, kid: str) -> tuple[str, bytes, int, int | None] | None:
        row = self.db.execute("SELECT org_id, public_key, added_seq, revoked_seq FROM keys WHERE kid = ?",
                              (kid,)).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]), int(row[2]), row[3])

    def count(self, table: str) -> int:
        assert table in {"orgs", "keys"}
        return int(self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


class Auditor:
    """Verifies one remote log into one state file."""

    def __init__(self, client: PartsLedger, state_path: Path, *, page: int = 1000,
                 progress: Progress | None = None, signature_workers: int | None = None) -> None:
        """``signature_workers``: helper processes for signatures (0: none; default:
        :func:`~ledger.sigpool.default_workers` — none below :data:`PARALLEL_MIN_RECORDS` records)."""
        self.client = client
        self.signature_workers = signature_workers
        self._pool: SignaturePool | None = None
        self._queued_kids: dict[int, str] = {}  # seq -> kid of the signatures queued in the pool (one page)
        self.state = AuditState(state_path)
        self.page = page
        self.progress = progress
        # kid -> (org, public key, added seq, revoked seq) as the state file says; dropped on every key event
        self._keys: dict[str, tuple[str, bytes, int, int | None] | None] = {}
        self._verify_keys: dict[bytes, nacl.signing.VerifyKey] = {}
        self._fetcher: ThreadPoolExecutor | None = None
        self._next_page: Future[list[ServedRecord]] | None = None
        # (seq, type, sql, params): part and installation rows of this page, written by _write_rows
        self._rows: list[tuple[int, str, str, tuple[Any, ...]]] = []

    def close(self) -> None:
        self._quiesce()
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._fetcher is not None:
            self._fetcher.shutdown(wait=True)
            self._fetcher = None
        self.state.close()

    # paging ---------------------------------------------------------------------------------
    def _prefetch(self, start: int, target: VerifiedCheckpoint) -> None:
        """Start fetching (and checking the bytes of) the page at ``start`` in the background."""
        if self._fetcher is None:
            self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-fetch")
        self._next_page = self._fetcher.submit(self.client.records, start, self.page, within=target)

    def _take_page(self) -> list[ServedRecord]:
        assert self._next_page is not None
        pending, self._next_page = self._next_page, None
        return pending.result()

    def _quiesce(self) -> None:
        """Let a background fetch finish (its outcome unused) before the client is used here."""
        pending, self._next_page = self._next_page, None
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(Exception):  # the page is not needed any more
                pending.result()

    def run(self, *, compare: bool = True) -> AuditReport:
        client, state = self.client, self.state
        origin = client.origin
        known = state.get("origin")
        if known is not None and known != origin:
            raise IntegrityError(f"audit state belongs to log {known!r}, not {origin!r}; use another --state file")
        state.put("origin", origin)
        target = client.checkpoint()
        self._check_against_last_audit(target)
        start = int(state.get("next_seq") or 0)
        if start > target.size:
            raise IntegrityError(f"the log now has {target.size} records but {start} were audited before",
                                 seq=target.size, code="log_shrunk")
        prev = b64decode(state.get("prev") or b64encode(ZERO_HASH), field="prev", size=32)
        compact = state.frontier()
        seq = start
        workers = self.signature_workers
        if workers is None:
            workers = default_workers(target.size - start)
        if workers > 0 and self._pool is None:
            self._pool = SignaturePool(workers)
        if seq < target.size:
            self._prefetch(seq, target)
        while seq < target.size:
            page = self._take_page()
            if not page:
                raise IntegrityError(f"the server stopped at record {seq} of {target.size}", seq=seq)
            after = seq + len(page)  # client.records checked that the page holds seq, seq + 1, ... in order
            if after < target.size:
                self._prefetch(after, target)
            current: int | None = None  # the record being checked: rows of those before it are written first
            try:
                for served in page:
                    current = served.seq
                    self._check(served, prev, origin, target)
                    self._apply(served)
                    compact.append(served.leaf_hash)
                    prev = served.leaf_hash
                current = None
                self._write_rows()
                self._signatures_answered()  # nothing is committed before its signature is checked
            except IntegrityError as exc:
                first = exc
                if current is not None:
                    try:
                        self._write_rows(before=current)  # a row an earlier record could not write comes first
                    except IntegrityError as earlier:
                        first = earlier
                self._signatures_answered(before=first.seq)
                raise first from None
            finally:
                self._rows = []
            seq = after
            state.put("next_seq", str(seq))
            state.put("prev", b64encode(prev))
            state.save_frontier(compact)
            state.commit()
            if self.progress:
                self.progress(seq, target.size)
        if compact.root() != target.root:
            raise IntegrityError(f"the records served do not hash to the root of checkpoint size {target.size}: "
                                 "a served record is not the one the log signed",
                                 seq=self._first_excluded(target, start))
        state.put("checkpoint", target.note)
        state.commit()
        compared = self.compare() if compare else []
        return AuditReport(origin=origin, size=target.size, root=target.root, checked_now=target.size - start,
                           resumed_from=start, orgs=state.count("orgs"), keys=state.count("keys"),
                           compared=compared)

    # per record ----------------------------------------------------------------------------
    def _check(self, served: ServedRecord, prev: bytes, origin: str, target: VerifiedCheckpoint) -> None:
        record, seq = served.record, served.seq
        if record.prev != prev:
            raise IntegrityError(f"record {seq} does not chain to record {seq - 1}",
                                 seq=self._blame_link(seq, target))
        entry = record.entry
        if entry.origin != origin:
            raise IntegrityError(f"record {seq}: entry names origin {entry.origin!r}, not this log", seq=seq)
        if seq == 0:
            public = self._genesis_key(served)
        else:
            kid = entry.kid
            if kid in self._keys:
                key = self._keys[kid]
            else:
                if len(self._keys) >= _CACHE_MAX:
                    self._keys.clear()
                key = self._keys[kid] = self.state.key(kid)
            if key is None or key[0] != entry.org:
                raise IntegrityError(f"record {seq}: key {entry.kid} was never registered for org {entry.org}",
                                     seq=seq)
            _org, public, _added, revoked = key
            if revoked is not None and revoked < seq:
                raise IntegrityError(f"record {seq}: key {entry.kid} was revoked at seq {revoked}", seq=seq)
        if self._pool is not None:
            self._queued_kids[seq] = entry.kid
            failed = self._pool.add(seq, public, _ENTRY_PREFIX + entry.canonical, record.signed.signature)
            if failed is not None:
                raise self._bad_signature(failed)
            return
        verify_key = self._verify_keys.get(public)
        if verify_key is None:
            if len(self._verify_keys) >= _CACHE_MAX:
                self._verify_keys.clear()
            verify_key = self._verify_keys[public] = nacl.signing.VerifyKey(public)
        try:
            verify_key.verify(_ENTRY_PREFIX + entry.canonical, record.signed.signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
            raise IntegrityError(f"record {seq}: the entry's signature does not verify under key {entry.kid}",
                                 seq=seq) from None

    def _bad_signature(self, seq: int) -> IntegrityError:
        kid = self._queued_kids.get(seq, "?")
        return IntegrityError(f"record {seq}: the entry's signature does not verify under key {kid}", seq=seq)

    def _signatures_answered(self, before: int | None = -1) -> None:
        """Wait for the queued signatures; raise for the first that failed.

        After a problem at ``before`` (``None``: at no particular record) only a failure at or before it is
        raised here — the caller raises its own problem otherwise.
        """
        if self._pool is None:
            return
        failed = self._pool.drain()
        kids, self._queued_kids = self._queued_kids, {}
        if failed is not None and (before == -1 or before is None or failed <= before):
            self._queued_kids = kids
            raise self._bad_signature(failed) from None

    def _genesis_key(self, served: ServedRecord) -> bytes:
        entry = served.record.entry
        if entry.type != "log.genesis":
            raise IntegrityError("record 0 is not log.genesis", seq=0)
        for raw in entry.body.get("public_keys") or []:
            public = b64decode(raw, field="public_keys", size=32)
            if key_id(public) == entry.kid:
                return public
        raise IntegrityError("record 0: genesis is not signed by a key it registers", seq=0)

    def _apply(self, served: ServedRecord) -> None:
        """Derive the org and key facts a record establishes (the subset compared with the server)."""
        entry, seq, db = served.record.entry, served.seq, self.state.db
        body = entry.body
        if entry.type in ("log.genesis", "org.register", "key.add", "key.revoke"):
            self._keys.clear()  # the state file's keys change below
        try:
            if entry.type in ("log.genesis", "org.register"):
                kind = "operator" if entry.type == "log.genesis" else str(body["kind"])
                db.execute("INSERT INTO orgs VALUES (?, ?, ?, ?)", (body["org_id"], kind, body["name"], seq))
                for raw in body["public_keys"]:
                    public = b64decode(raw, field="public_keys", size=32)
                    db.execute("INSERT INTO keys VALUES (?, ?, ?, ?, NULL)",
                               (key_id(public), body["org_id"], public, seq))
            elif entry.type == "key.add":
                public = b64decode(body["public_key"], field="public_key", size=32)
                db.execute("INSERT INTO keys VALUES (?, ?, ?, ?, NULL)", (key_id(public), body["org_id"], public, seq))
            elif entry.type == "key.revoke":
                db.execute("UPDATE keys SET revoked_seq = ? WHERE kid = ? AND revoked_seq IS NULL",
                           (seq, body["kid"]))
            elif entry.type == "part.commission":
                self._rows.append((seq, entry.type, _INSERT_PART,
                                   (body["gtin"], body["serial"], body.get("lot"), body["category"], entry.org, seq)))
            elif entry.type == "part.repurpose":  # a second life: a new identity, commissioned by the repurposer
                self._rows.append((seq, entry.type, _INSERT_PART,
                                   (body["new_gtin"], body["new_serial"], body.get("lot"), body.get("category"),
                                    entry.org, seq)))
            elif entry.type == "part.install":
                self._rows.append((seq, entry.type, _INSERT_INSTALL,
                                   (seq, body["gtin"], body["serial"], body["vehicle"], entry.org)))
        except (KeyError, TypeError, sqlite3.IntegrityError, LedgerError) as exc:
            raise IntegrityError(f"record {seq}: {entry.type} cannot be applied ({exc})", seq=seq) from None

    def _write_rows(self, before: int | None = None) -> None:
        """Write the page's part and installation rows (those of records before ``before``), many per statement.

        If any cannot be written they are written again one by one, in sequence order, so the error names the
        first record whose row fails, as writing each row when its record was applied would.
        """
        rows = self._rows if before is None else [row for row in self._rows if row[0] < before]
        self._rows = []
        if not rows:
            return
        db = self.state.db
        db.execute("SAVEPOINT audit_rows")
        try:
            start = 0
            while start < len(rows):
                sql = rows[start][2]
                end = start
                while end < len(rows) and rows[end][2] == sql:
                    end += 1
                db.executemany(sql, [row[3] for row in rows[start:end]])
                start = end
        except (TypeError, ValueError, sqlite3.Error):
            db.execute("ROLLBACK TO audit_rows")
            for seq, type_, sql, params in rows:
                try:
                    db.execute(sql, params)
                except (TypeError, sqlite3.IntegrityError) as exc:
                    db.execute("ROLLBACK TO audit_rows")
                    db.execute("RELEASE audit_rows")
                    raise IntegrityError(f"record {seq}: {type_} cannot be applied ({exc})", seq=seq) from None
        db.execute("RELEASE audit_rows")

    # locating what is wrong -----------------------------------------------------------------
    def _blame_link(self, seq: int, target: VerifiedCheckpoint) -> int:
        """A broken link between ``seq - 1`` and ``seq``: blame the one the tree does not hold."""
        self._quiesce()
        try:
            before = self.client.records(seq - 1, 1, within=target)[0]
            self.client.prove_leaf(seq - 1, before.leaf_hash, target)
        except (ProofError, IntegrityError):
            return seq - 1
        return seq

    def _first_excluded(self, target: VerifiedCheckpoint, start: int) -> int | None:
        self._quiesce()
        for served in self.client.iter_records(start, within=target):
            try:
                self.client.prove_leaf(served.seq, served.leaf_hash, target)
            except ProofError:
                return served.seq
        return None

    def _check_against_last_audit(self, target: VerifiedCheckpoint) -> None:
        """The checkpoint the previous audit ended on must be a prefix of the new target."""
        last = self.state.get("checkpoint")
        if last is None:
            return
        old = verify_checkpoint(last, self.client.verifier, origin=self.client.origin)
        if old.size > target.size:
            from clients.errors import LogShrunk

            raise LogShrunk(f"the log shrank from {old.size} to {target.size} records since the last audit",
                            remembered=last, offered=target.note)
        self.client.observe(last)

    # comparison with the server's answers ----------------------------------------------------
    def compare(self) -> list[str]:
        """Compare the derived orgs (``GET /v1/orgs``, paged) and keys (``GET /v1/orgs/{id}``) with the server.

        Both sides are streamed in registration order, so memory stays flat. Returns what was compared
        (nothing if the server has no org API).
        """
        derived = self.state.db.execute(
            "SELECT org_id, kind, name, registered_seq FROM orgs ORDER BY registered_seq").fetchall()
        served = self._served_orgs()
        for org_id, kind, name, seq in derived:
            try:
                item = next(served)
            except StopIteration:
                raise IntegrityError(f"the server does not list org {org_id}, registered at seq {seq}",
                                     seq=seq) from None
            except NotFound:
                return []
            facts = (item.get("org_id"), item.get("kind"), item.get("name"), item.get("registered_seq"))
            if facts != (org_id, kind, name, seq):
                raise IntegrityError(f"org registered at seq {seq}: the log says {(org_id, kind, name, seq)}, "
                                     f"the server says {facts}", seq=seq)
        extra = next(served, None)
        if extra is not None:
            raise IntegrityError(f"the server lists org {extra.get('org_id')}, which no record registers")
        for (org_id, *_rest) in derived:
            self._compare_keys(org_id, self.client.get_json(f"/v1/orgs/{org_id}"))
        return ["orgs", "keys", *self._compare_parts()]

    def _compare_parts(self) -> list[str]:
        """Commissioning facts of every part (``GET /v1/parts``, paged) and installations per installed part.

        The server lists parts in commissioning order, as the log commissioned them: both sides are read in
        that order and compared a commissioning seq at a time (memory flat; parts of one seq, if ever more
        than one, in any order), while the next page is fetched in the background.
        """
        db = self.state.db
        log_parts = _by_seq(tuple(row) for row in db.execute(
            "SELECT commissioned_seq, gtin, serial, lot, category, commissioned_by FROM parts "
            "ORDER BY commissioned_seq"))
        try:
            served = _by_seq(_served_part(item) for item in self._paged("/v1/parts"))
            mine, theirs = next(log_parts, None), next(served, None)
            while mine is not None or theirs is not None:
                if theirs is None or (mine is not None and mine[0] < theirs[0]):
                    assert mine is not None
                    _seq, gtin, serial, *_facts = mine[1][0]
                    raise _unlisted(gtin, serial, mine[0])
                if mine is None or theirs[0] < mine[0]:
                    self._explain_served(theirs[1][0])
                self._compare_commissioned(mine[0], mine[1], theirs[1])
                mine, theirs = next(log_parts, None), next(served, None)
        except NotFound:
            return []  # no part API on this server
        installed = db.execute("SELECT DISTINCT gtin, serial FROM installs ORDER BY gtin, serial").fetchall()
        for gtin, serial in installed:
            derived = [tuple(r) for r in db.execute(
                "SELECT seq, vehicle, workshop FROM installs WHERE gtin = ? AND serial = ? ORDER BY seq",
                (gtin, serial))]
            detail = self.client.get_json(f"/v1/parts/{gtin}/{serial}")
            answered = sorted((i.get("seq"), i.get("vehicle"), i.get("workshop"))
                              for i in (detail.get("installations") or [] if isinstance(detail, dict) else []))
            if answered != derived:
                raise IntegrityError(f"part {gtin}/{serial}: the log installs it {derived}, the server says {answered}",
                                     seq=int(derived[0][0]))
        return ["parts", "installations"]

    def _paged(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, the next page fetched in the background while this one is used."""
        if self._fetcher is None:
            self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-fetch")
        pending: Future[Any] | None = self._fetcher.submit(self.client.get_json, path,
                                                          {"offset": 0, "limit": self.page})
        try:
            while pending is not None:
                data = pending.result()
                pending = None
                if not isinstance(data, dict) or not isinstance(data.get("items"), list):
                    raise IntegrityError(f"GET {path}: expected {{items, next_offset}}")
                offset = data.get("next_offset")
                if offset is not None:
                    pending = self._fetcher.submit(self.client.get_json, path, {"offset": offset, "limit": self.page})
                yield from (item for item in data["items"] if isinstance(item, dict))
        finally:  # a comparison that stops early lets the page in flight finish before the client is used again
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(Exception):
                    pending.result()

    def _compare_commissioned(self, seq: int, mine: list[tuple[Any, ...]], theirs: list[tuple[Any, ...]]) -> None:
        """The parts the log commissioned at ``seq`` against those the server lists as commissioned there."""
        derived = {(gtin, serial): facts for _seq, gtin, serial, *facts in mine}
        listed: dict[tuple[Any, Any], tuple[Any, ...]] = {}
        for part in theirs:
            key = (part[1], part[2])
            if key in listed:
                raise IntegrityError(f"the server lists part {key[0]}/{key[1]} twice", seq=seq)
            listed[key] = part
        for key, part in sorted(listed.items(), key=lambda kv: str(kv[0])):
            if key not in derived:
                self._explain_served(part)
            mismatch = _commissioning_mismatch((*derived[key], seq), part)
            if mismatch is not None:
                raise mismatch
        missing = sorted(derived.keys() - listed.keys())
        if missing:
            raise _unlisted(*missing[0], seq)

    def _explain_served(self, part: tuple[Any, ...]) -> NoReturn:
        """Raise for a listed part the log did not commission where the server says: never, or elsewhere."""
        _seq, gtin, serial, *_facts = part
        row = self.state.db.execute("SELECT lot, category, commissioned_by, commissioned_seq FROM parts "
                                    "WHERE gtin = ? AND serial = ?", (gtin, serial)).fetchone()
        if row is None:
            raise IntegrityError(f"the server lists part {gtin}/{serial}, which no record commissions")
        mismatch = _commissioning_mismatch(tuple(row), part)
        assert mismatch is not None  # listed at another seq than the log's
        raise mismatch

    def _served_orgs(self) -> Iterator[dict[str, Any]]:
        return self._paged("/v1/orgs")

    def _compare_keys(self, org_id: str, served: Any) -> None:
        keys = served.get("keys") if isinstance(served, dict) else None
        if not isinstance(keys, list):
            raise IntegrityError(f"GET /v1/orgs/{org_id}: expected the org with its keys")
        derived = {str(kid): (added, revoked) for kid, added, revoked in self.state.db.execute(
            "SELECT kid, added_seq, revoked_seq FROM keys WHERE org_id = ?", (org_id,))}
        answered = {str(k.get("kid")): (k.get("added_seq"), k.get("revoked_seq")) for k in keys
                    if isinstance(k, dict)}
        if answered != derived:
            raise IntegrityError(f"org {org_id}: the log gives its keys as {derived}, the server as {answered}")


def audit(client: PartsLedger, state_path: Path, *, page: int = 1000, progress: Progress | None = None,
          compare: bool = True, signature_workers: int | None = None) -> AuditReport:
    auditor = Auditor(client, state_path, page=page, progress=progress, signature_workers=signature_workers)
    try:
        return auditor.run(compare=compare)
    finally:
        auditor.close()


__all__ = ["PARALLEL_MIN_RECORDS", "AuditReport", "AuditState", "Auditor", "Progress", "audit"]
