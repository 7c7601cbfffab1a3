"""Log reads inside a caller's session: the log's size, the latest checkpoint, Merkle nodes.

:class:`~ledger.log.Ledger` opens one transaction per call; the scan path
needs a checkpoint, the part's latest record and its inclusion proof
*together with* the part's projections, consistently and cheaply, so it
reads them all in one read transaction through these helpers.

Every statement here is built once at import and compiled once per
dialect; :class:`RawReader` runs them on the session's own DBAPI
connection (the same transaction), because for the handful of tiny indexed
reads a scan makes, SQLAlchemy's per-execution work costs several times
what the database does. Merkle nodes go through a :class:`NodeCache`: a stored
node is the hash of a *complete* subtree, which no later append can change
(the tables are append-only, enforced by triggers), so a cached node is
never stale.

:class:`SnapshotReads` answers "has the log changed?" with one indexed read
outside any ORM session, for callers that cache whole answers by log size,
and gives consistent read snapshots on private connections.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from sqlalchemy import Select, and_, bindparam, or_, select
from sqlalchemy.engine import Dialect, make_url
from sqlmodel import Session

from ledger import merkle
from ledger.errors import IntegrityError
from ledger.storage.db import Database
from ledger.storage.log_tables import CHECKPOINTS, NODES

#: The log's size as seen by one snapshot: (records, newest checkpoint size). Both are primary-key
#: maxima (one index probe each); every append adds records and a checkpoint in one transaction, so
#: any append changes it.
SIZE_SQL = ("SELECT (SELECT max(seq) FROM log_records) AS last_seq,"
            " (SELECT max(size) FROM log_checkpoints) AS checkpoint_size")

LogSize = tuple[int, int]
_Ask = TypeVar("_Ask")
_Answer = TypeVar("_Answer")

#: The newest checkpoint's size, root and signed note.
LATEST_CHECKPOINT = (select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
           .order_by(CHECKPOINTS.c.size.desc()).limit(1))

_Compiled = tuple[str, tuple[str, ...] | None, dict[str, Any]]
_COMPILED: dict[tuple[str, int], _Compiled] = {}
_COMPILED_LOCK = threading.Lock()


def _compiled(stmt: Select[Any], dialect: Dialect) -> _Compiled:
    """``(SQL, positional parameter names or None for named, default parameters)`` of ``stmt`` for ``dialect``."""
    key = (dialect.name, id(stmt))
    found = _COMPILED.get(key)
    if found is None:
        compiled = stmt.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ()) if compiled.positional else None
        found = (compiled.string, names, dict(compiled.params))
        with _COMPILED_LOCK:
            _COMPILED[key] = found
    return found


class RawReader:
    """Runs prebuilt SELECTs on a DBAPI connection, inside whatever transaction that connection is in.

    Only for statements built once (module constants: they are compiled once
    per dialect, keyed by identity) whose columns need no SQLAlchemy result
    processing (JSON columns come back as text on SQLite: see :func:`json_value`).
    """

    def __init__(self, dbapi_connection: Any, dialect: Dialect) -> None:
        self.dialect = dialect
        self._cursor = dbapi_connection.cursor()

    @classmethod
    def of(cls, session: Session) -> RawReader:
        """A reader in ``session``'s transaction."""
        conn = session.connection()
        return cls(conn.connection.dbapi_connection, conn.dialect)

    def rows(self, stmt: Select[Any], params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        sql, names, defaults = _compiled(stmt, self.dialect)
        merged = {**defaults, **(params or {})}
        self._cursor.execute(sql, tuple(merged[n] for n in names) if names is not None else merged)
        columns = [d[0] for d in self._cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in self._cursor.fetchall()]

    def tuples(self, stmt: Select[Any], params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """:meth:`rows` as the driver's tuples, in the statement's column order."""
        sql, names, defaults = _compiled(stmt, self.dialect)
        merged = {**defaults, **(params or {})}
        self._cursor.execute(sql, tuple(merged[n] for n in names) if names is not None else merged)
        return self._cursor.fetchall()  # type: ignore[no-any-return]

    def first(self, stmt: Select[Any], params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        found = self.rows(stmt, params)
        return found[0] if found else None

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """A constant SQL text without parameters."""
        self._cursor.execute(sql)
        return [tuple(row) for row in self._cursor.fetchall()]


def json_value(value: Any) -> Any:
    """A JSON column's value as read raw: text on SQLite, already decoded by psycopg."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def size_of(row: Sequence[Any] | None) -> LogSize:
    if row is None:
        return (0, 0)
    records = 0 if row[0] is None else int(row[0]) + 1
    return (records, 0 if row[1] is None else int(row[1]))


def log_size(reader: RawReader) -> LogSize:
    """``(records, newest checkpoint size)`` in the reader's snapshot."""
    found = reader.execute(SIZE_SQL)
    return size_of(found[0] if found else None)


def latest_checkpoint(reader: RawReader) -> tuple[int, bytes, str] | None:
    """``(size, root, signed note)`` of the newest checkpoint, or ``None`` for an empty log."""
    return checkpoint_of(reader.first(LATEST_CHECKPOINT))


def checkpoint_of(row: Mapping[str, Any] | None) -> tuple[int, bytes, str] | None:
    """:func:`latest_checkpoint` of the row :data:`LATEST_CHECKPOINT` read."""
    return None if row is None else (int(row["size"]), bytes(row["root"]), str(row["note"]))


class NodeCache:
    """Stored Merkle node hashes by ``(level, index)``, least recently used first out (thread-safe).

    With ``min_level``, the nodes a proof reads on its own record's path below that level (the leaf and the
    leaf's siblings, see :func:`own_path`) are not kept: for proofs of records picked at random such a node is
    almost never asked for twice, and keeping it would push out the upper levels that every proof shares
    (there are as many nodes at level 0 as at all the levels above together). The low nodes of the tree's
    right edge, which every proof against one checkpoint shares, are kept.

    It also keeps up to ``tails`` whole upper parts of inclusion proofs (:class:`ProofPlan`), each the same for
    every record below one node of :data:`TAIL_LEVEL` in a tree of one size: never stale either.
    """

    def __init__(self, maxsize: int = 65_536, *, min_level: int = 0, tails: int = 4096) -> None:
        self.maxsize = maxsize
        self.min_level = min_level
        self.max_tails = tails
        self._items: OrderedDict[merkle.NodeKey, bytes] = OrderedDict()
        self._tails: OrderedDict[tuple[int, int], tuple[bytes, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, keys: Sequence[merkle.NodeKey]) -> tuple[dict[merkle.NodeKey, bytes], list[merkle.NodeKey]]:
        """``(found, missing)`` for ``keys``."""
        found: dict[merkle.NodeKey, bytes] = {}
        missing: list[merkle.NodeKey] = []
        with self._lock:
            for key in keys:
                value = self._items.get(key)
                if value is None:
                    missing.append(key)
                else:
                    self._items.move_to_end(key)
                    found[key] = value
        return found, missing

    def add(self, nodes: Mapping[merkle.NodeKey, bytes], *, record: int | None = None) -> None:
        """Keep ``nodes``, read for the proof of ``record`` (if given: see ``min_level``)."""
        kept = nodes
        if record is not None and self.min_level:
            skip = set(own_path(record, self.min_level))
            kept = {key: value for key, value in nodes.items() if key not in skip}
        with self._lock:
            self._items.update(kept)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def tail(self, seq: int, size: int) -> tuple[bytes, ...] | None:
        """The hashes of record ``seq``'s inclusion proof in the tree of ``size`` from :data:`TAIL_LEVEL` up, if
        kept (see :class:`ProofPlan`)."""
        key = (seq >> TAIL_LEVEL, size)
        with self._lock:
            tail = self._tails.get(key)
            if tail is not None:
                self._tails.move_to_end(key)
            return tail

    def keep_tail(self, seq: int, size: int, tail: Sequence[bytes]) -> None:
        with self._lock:
            self._tails[(seq >> TAIL_LEVEL, size)] = tuple(tail)
            while len(self._tails) > self.max_tails:
                self._tails.popitem(last=False)


def warm_node_cache(db: Database, cache: NodeCache) -> int:
    """Fill ``cache`` with the stored nodes every proof shares most: the highest levels first, down to the
    cache's ``min_level`` and no more than it holds. A server calls it at start, so its first scans do not
    read what thousands of scans would otherwise have had to cache one by one. Returns how many it loaded."""
    stmt = (select(NODES.c.level, NODES.c.idx, NODES.c.hash).where(NODES.c.level >= cache.min_level)
            .order_by(NODES.c.level.desc(), NODES.c.idx).limit(cache.maxsize))
    with db.read() as session:
        rows = session.execute(stmt).all()
    # Lowest first, so that the highest levels are the most recently used: the last to go when scans evict.
    cache.add({(int(level), int(idx)): bytes(value) for level, idx, value in reversed(rows)})
    return len(rows)


def own_path(record: int, levels: int) -> list[merkle.NodeKey]:
    """Record ``record``'s leaf, then the siblings of its ancestors at the ``levels`` lowest levels, lowest
    first: the nodes of its inclusion proof that no other record's proof shares with it (but its sibling's)."""
    return [(0, record), *((level, (record >> level) ^ 1) for level in range(levels))]


#: Node queries come in widths that are multiples of this: a handful of statements serve every proof.
NODE_QUERY_STEP = 8


@functools.lru_cache(maxsize=64)
def _nodes_query(width: int) -> Select[Any]:
    """Nodes ``(level = :l0 AND idx = :i0) OR (level = :l1 AND idx = :i1) OR …`` for ``width`` keys.

    SQLite (a multi-index OR) and PostgreSQL (a bitmap OR) both answer it
    from the primary key; a row-value ``IN ((level, idx), ...)`` makes SQLite
    scan the whole node table. Widths are multiples of :data:`NODE_QUERY_STEP`
    (unused pairs are ``(-1, -1)``, which no node has), so the few statements
    there are stay compiled: here, in SQLite's statement cache and among
    PostgreSQL's prepared statements. One statement per proof *shape* made
    every cold verdict prepare a new one, which cost more than the reads.
    """
    terms = [and_(NODES.c.level == bindparam(f"l{j}"), NODES.c.idx == bindparam(f"i{j}")) for j in range(width)]
    return select(NODES.c.level, NODES.c.idx, NODES.c.hash).where(or_(*terms))


def nodes_request(keys: Sequence[merkle.NodeKey], cache: NodeCache | None = None, *,
                  known: Mapping[merkle.NodeKey, bytes] | None = None
                  ) -> tuple[dict[merkle.NodeKey, bytes], tuple[Select[Any], dict[str, int]] | None]:
    """``(found, (statement, parameters))``: the hashes of ``keys`` that ``known`` (stored nodes read
    already) or the cache holds, and the one query that reads the rest (``None`` when nothing is missing)."""
    wanted = list(dict.fromkeys(keys))
    given: dict[merkle.NodeKey, bytes] = {}
    if known:
        given = {key: known[key] for key in wanted if key in known}
        wanted = [key for key in wanted if key not in given]
    found, missing = cache.lookup(wanted) if cache is not None else ({}, wanted)
    found.update(given)
    if not missing:
        return found, None
    width = -(-len(missing) // NODE_QUERY_STEP) * NODE_QUERY_STEP
    params: dict[str, int] = {}
    for j in range(width):
        level, idx = missing[j] if j < len(missing) else (-1, -1)
        params[f"l{j}"] = level
        params[f"i{j}"] = idx
    return found, (_nodes_query(width), params)


def nodes_read(found: dict[merkle.NodeKey, bytes], rows: Sequence[Sequence[Any]],
               cache: NodeCache | None = None, *, record: int | None = None) -> dict[merkle.NodeKey, bytes]:
    """``found`` completed with the ``(level, idx, hash)`` rows of :func:`nodes_request`'s query (for the
    proof of ``record``, if given: see :meth:`NodeCache.add`)."""
    fetched = {(int(level), int(idx)): bytes(value) for level, idx, value in rows}
    if cache is not None and fetched:
        cache.add(fetched, record=record)
    found.update(fetched)
    return found


def read_nodes(reader: RawReader, keys: Sequence[merkle.NodeKey],
               cache: NodeCache | None = None, *, record: int | None = None) -> dict[merkle.NodeKey, bytes]:
    """The stored hashes of ``keys`` (absent keys are absent from the answer), in at most one query."""
    found, query = nodes_request(keys, cache)
    if query is None:
        return found
    return nodes_read(found, reader.tuples(*query), cache, record=record)


def inclusion_proof(reader: RawReader, seq: int, size: int,
                    cache: NodeCache | None = None) -> tuple[bytes, list[bytes]]:
    """``(leaf hash, RFC 9162 proof)`` of record ``seq`` in the tree of ``size``, from stored nodes.

    The leaf is read with the proof's nodes: one query for whatever the node cache lacks.
    """
    plan = ProofPlan(seq, size, cache)
    return plan.proof(read_nodes(reader, plan.nodes(), cache, record=seq))


#: Records below one node of this level share the hashes of their inclusion proofs from this level up (in one
#: tree): a :class:`NodeCache` keeps those hashes whole, by that node and the tree's size (:meth:`NodeCache.tail`).
TAIL_LEVEL = 8


class ProofPlan:
    """The stored nodes record ``seq``'s inclusion proof in the tree of ``size`` is made of, and how.

    With a :class:`NodeCache` that holds the proof's hashes from :data:`TAIL_LEVEL` up (the *tail*, shared by
    the 256 records below one node of that level), only the levels below it are planned; otherwise the whole
    proof is, and its tail is kept once made (:meth:`proof`).
    """

    __slots__ = ("_cache", "_low", "plan", "seq", "size", "tail")

    def __init__(self, seq: int, size: int, cache: NodeCache | None = None) -> None:
        self.seq, self.size, self._cache = seq, size, cache
        self.tail = None if cache is None else cache.tail(seq, size)
        low = merkle.inclusion_plan(seq, size, levels=(0, TAIL_LEVEL))
        self._low = len(low)
        self.plan = low if self.tail is not None else low + merkle.inclusion_plan(seq, size, levels=(TAIL_LEVEL, None))

    def nodes(self) -> list[merkle.NodeKey]:
        """The stored nodes :meth:`proof` needs: the leaf, then the plan's."""
        return [(0, self.seq), *(key for keys in self.plan for key in keys)]

    def proof(self, nodes: Mapping[merkle.NodeKey, bytes]) -> tuple[bytes, list[bytes]]:
        """``(leaf hash, proof)`` from the nodes :meth:`nodes` names."""
        leaf = nodes.get((0, self.seq))
        if leaf is None or len(leaf) != merkle.HASH_SIZE:
            raise IntegrityError(f"Merkle node (level=0, index={self.seq}) is missing from the store or malformed")
        hashes = merkle.proof_from_plan(self.plan, nodes)
        if self.tail is not None:
            hashes.extend(self.tail)
        elif self._cache is not None:
            self._cache.keep_tail(self.seq, self.size, hashes[self._low:])
        return leaf, hashes


Request = tuple[Select[Any] | str, Mapping[str, Any] | None]
#: The result column names of each statement :func:`_dict_rows` has read (a statement's columns are fixed).
_COLUMN_NAMES: dict[str, tuple[str, ...]] = {}


async def _dict_rows(sql: str, cursor: psycopg.AsyncCursor[Any]) -> list[dict[str, Any]]:
    """The rows of ``cursor``, which ran ``sql``, as dicts (tuple rows: a dict row factory looks the column
    names up for every row; here they are looked up once per statement)."""
    rows = await cursor.fetchall()
    names = _COLUMN_NAMES.get(sql)
    if names is None:
        names = _COLUMN_NAMES[sql] = tuple(column.name for column in cursor.description or ())
    return [dict(zip(names, row, strict=True)) for row in rows]


class AsyncReads:
    """Reads on a private autocommit asyncio PostgreSQL connection, lent by :meth:`SnapshotReads.async_reads`.

    :meth:`together` runs independent statements in one pipeline, each of which
    PostgreSQL answers from one snapshot of its own. :meth:`round` reads inside one ``REPEATABLE READ READ
    ONLY`` transaction: each round sends its statements together and waits
    once for all their answers (psycopg's pipeline mode), so a round costs one
    network round trip however many independent reads it holds; the
    transaction's ``BEGIN`` rides with the first round, its ``COMMIT`` with the
    round marked ``last``.
    """

    def __init__(self, conn: psycopg.AsyncConnection[Any], dialect: Dialect) -> None:
        self._conn = conn
        self._dialect = dialect
        self._begun = False
        self._committed = False

    @property
    def idle(self) -> bool:
        """True when no transaction of :meth:`round` is left open."""
        return self._committed or not self._begun

    def _query(self, stmt: Select[Any] | str, params: Mapping[str, Any] | None) -> tuple[str, Any]:
        if isinstance(stmt, str):
            return stmt, None
        sql, names, defaults = _compiled(stmt, self._dialect)
        merged = {**defaults, **(params or {})}
        return sql, tuple(merged[n] for n in names) if names is not None else merged

    async def together(self, requests: Sequence[Request]) -> list[list[dict[str, Any]]]:
        """The rows of each of several independent statements (a prebuilt SELECT with its parameters, or a
        constant SQL text), sent in one pipeline: one write and one wait for all of them. Each statement is
        its own snapshot; none may run inside a transaction of :meth:`round`."""
        if not self.idle:
            raise RuntimeError("together() inside a snapshot: use round()")
        conn = self._conn
        queries = [self._query(stmt, params) for stmt, params in requests]
        cursors = []
        async with conn.pipeline():
            for sql, args in queries:
                cursor = conn.cursor()  # tuple rows (see _dict_rows)
                await cursor.execute(sql, args)
                cursors.append(cursor)
        return [await _dict_rows(sql, cursor) for (sql, _), cursor in zip(queries, cursors, strict=True)]

    async def each(self, stmt: Select[Any], columns: Sequence[str],
                   labels: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """The one row for each of ``labels`` of a statement that answers many at once: ``stmt`` takes an
        array parameter per name in ``columns`` (the labels' values at that position) and returns one row per
        label, in the order given, numbered from 1 in its column ``n``. One statement, one snapshot."""
        if not self.idle:
            raise RuntimeError("each() inside a snapshot: use round()")
        sql, args = self._query(stmt, {name: [label[i] for label in labels] for i, name in enumerate(columns)})
        cursor = self._conn.cursor()
        await cursor.execute(sql, args)
        out = await _dict_rows(sql, cursor)
        if [row["n"] for row in out] != list(range(1, len(labels) + 1)):
            raise IntegrityError("a statement for many labels did not answer each label once, in order")
        return out

    async def round(self, requests: Sequence[Request], *, last: bool = False) -> list[list[dict[str, Any]]]:
        """The rows of each statement (a prebuilt SELECT with its parameters, or a constant SQL text)."""
        conn = self._conn
        cursors: list[psycopg.AsyncCursor[dict[str, Any]]] = []
        async with conn.pipeline():
            if not self._begun:
                await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                self._begun = True
            for stmt, params in requests:
                cursor = conn.cursor(row_factory=dict_row)
                await cursor.execute(*self._query(stmt, params))
                cursors.append(cursor)
            if last:
                await conn.execute("COMMIT")
        if last:
            self._committed = True
        return [await cursor.fetchall() for cursor in cursors]


class _Batches(Generic[_Ask, _Answer]):
    """Requests of concurrent scans, sent together: while :data:`IN_FLIGHT` batches are at the database, the
    requests made meanwhile wait, then go as the next batch on one connection (``send``: one pipeline of
    statements, or one statement for many labels). Under load a scan's read then costs a share of one write
    and one wait instead of its own; with few scans, each goes at once. An error fails the whole batch it
    was in."""

    IN_FLIGHT = 2

    def __init__(self, connections: _AsyncConnections, dialect: Dialect,
                 send: Callable[[AsyncReads, list[_Ask]], Awaitable[list[_Answer]]]) -> None:
        self._connections = connections
        self._dialect = dialect
        self._send = send
        self._pending: list[tuple[_Ask, asyncio.Future[_Answer]]] = []
        self._running = 0
        self._tasks: set[asyncio.Future[None]] = set()

    async def ask(self, request: _Ask) -> _Answer:
        future: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._running < self.IN_FLIGHT:
            self._running += 1
            task = asyncio.ensure_future(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    async with self._connections.borrow(self._dialect) as reads:
                        answers = await self._send(reads, [request for request, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for (_, future), answer in zip(batch, answers, strict=True):
                        if not future.done():
                            future.set_result(answer)
        finally:
            self._running -= 1


class _AsyncConnections:
    """A few private autocommit asyncio connections for :class:`AsyncReads` (in one event loop)."""

    def __init__(self, conninfo: str, limit: int) -> None:
        self._conninfo = conninfo
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(limit)
        self.loop = asyncio.get_running_loop()

    @asynccontextmanager
    async def borrow(self, dialect: Dialect) -> AsyncIterator[AsyncReads]:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            reads = AsyncReads(conn, dialect)
            try:
                yield reads
            finally:
                # A connection goes back only between transactions; one left mid-way (an error, a
                # cancelled scan) is closed rather than rolled back on someone else's time.
                if reads.idle and not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
                    self._idle.append(conn)
                else:
                    await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        # Every statement here is an indexed read built once, prepared by psycopg after a few runs: a generic
        # plan serves each as well as a custom one, and one for many labels (AsyncReads.each) would otherwise
        # be planned afresh at every run (custom plans look cheaper for arrays of known length).
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        return conn

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


class SnapshotReads:
    """Consistent read snapshots and log-size probes outside any ORM session.

    On a SQLite file each thread keeps one private connection (``query_only``),
    so a read costs no connection set-up and keeps SQLite's page cache warm;
    a probe is one autocommit read and sees every committed append, and a
    :meth:`snapshot` is one deferred ``BEGIN`` … ``COMMIT`` (WAL: never waits
    for the writer). Both read a local file in microseconds, cheap enough to
    run on an event loop (:attr:`local`). On PostgreSQL a snapshot borrows a
    pooled connection of the reader engine in a ``REPEATABLE READ READ ONLY``
    transaction, so all its statements see one state of the log.
    """

    def __init__(self, db: Database, *, busy_timeout_ms: int = 1000, async_connections: int = 8) -> None:
        self.db = db
        self._async_limit = async_connections
        self._async: _AsyncConnections | None = None
        self._batches: _Batches[Request, list[dict[str, Any]]] | None = None
        self._each: dict[int, _Batches[tuple[Any, ...], dict[str, Any]]] = {}
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._path: str | None = None
        self._aconn: psycopg.AsyncConnection[Any] | None = None
        self._next_size: asyncio.Future[LogSize] | None = None  # the size query the next callers share
        self._size_running = False
        self._size_task: asyncio.Future[None] | None = None
        database = make_url(db.url).database if db.is_sqlite else None
        if database and database != ":memory:" and not database.startswith("file:"):
            self._path = str(Path(database).resolve())

    @property
    def postgres(self) -> bool:
        """True when reads go to PostgreSQL (where :meth:`async_snapshot` works)."""
        return not self.db.is_sqlite

    @property
    def local(self) -> bool:
        """True when reads go to a local SQLite file (no network round trip)."""
        return self._path is not None

    def _sqlite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            assert self._path is not None
            conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    async def size_async(self) -> LogSize:
        """:meth:`size` without blocking an event loop or taking a thread: on a SQLite file the read itself
        (microseconds); on PostgreSQL a query on a private autocommit asyncio connection (opened on first
        use, in the caller's loop).

        On PostgreSQL concurrent callers share queries: a caller that arrives while a query is running
        waits for the next one, which every caller arriving meanwhile shares. So each caller still gets a
        size read by a query that began after it asked (never an older one), and a burst of scans costs
        one round trip per round trip's worth of callers instead of one each, queued behind one another.
        """
        if self._path is not None:
            return self.size()
        if self._next_size is None:
            self._next_size = asyncio.get_running_loop().create_future()
            if not self._size_running:
                self._size_running = True
                self._size_task = asyncio.ensure_future(self._size_rounds())
        return await asyncio.shield(self._next_size)

    async def _size_rounds(self) -> None:
        try:
            while self._next_size is not None:
                waiting, self._next_size = self._next_size, None
                try:
                    size = await self._query_size()
                except BaseException as exc:
                    waiting.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    waiting.set_result(size)
        finally:
            self._size_running = False

    async def _query_size(self) -> LogSize:
        # Only _size_rounds calls this, one query at a time.
        if self._aconn is None or self._aconn.closed:
            self._aconn = await psycopg.AsyncConnection.connect(self._conninfo(), autocommit=True)
        try:
            cursor = await self._aconn.execute(SIZE_SQL)
            return size_of(await cursor.fetchone())
        except psycopg.Error:
            await self._aconn.close()
            self._aconn = None
            raise

    def _conninfo(self) -> str:
        return make_url(self.db.url).set(drivername="postgresql").render_as_string(hide_password=False)

    def _connections(self) -> _AsyncConnections:
        if not self.postgres:
            raise TypeError("async snapshots read PostgreSQL")
        connections = self._async
        if connections is None or connections.loop is not asyncio.get_running_loop():
            connections = self._async = _AsyncConnections(self._conninfo(), self._async_limit)
            self._batches = _Batches(connections, self.db.reader.dialect, AsyncReads.together)
            self._each = {}
        return connections

    def async_reads(self) -> AbstractAsyncContextManager[AsyncReads]:
        """:class:`AsyncReads` on one of a few private asyncio connections (PostgreSQL only): a scan's
        reads on the event loop, with no thread and no pool checkout ping."""
        return self._connections().borrow(self.db.reader.dialect)

    async def batched(self, stmt: Select[Any], params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of one prebuilt statement (its own snapshot), sent with the statements other scans ask
        for at the same time (PostgreSQL only; see :class:`_Batches`)."""
        self._connections()
        assert self._batches is not None
        return await self._batches.ask((stmt, params))

    async def batched_each(self, stmt: Select[Any], columns: tuple[str, ...], label: tuple[Any, ...]
                           ) -> dict[str, Any]:
        """The row for ``label`` of a statement that answers many labels at once (see :meth:`AsyncReads.each`),
        sent once for the labels other scans ask for at the same time (PostgreSQL only; see :class:`_Batches`)."""
        self._connections()
        batches = self._each.get(id(stmt))
        if batches is None:
            assert self._async is not None

            async def send(reads: AsyncReads, labels: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
                return await reads.each(stmt, columns, labels)

            batches = self._each[id(stmt)] = _Batches(self._async, self.db.reader.dialect, send)
        return await batches.ask(label)

    async def aclose(self) -> None:
        """Close the asyncio connections (in the loop that opened them), then the rest (:meth:`close`)."""
        if self._aconn is not None:
            await self._aconn.close()
            self._aconn = None
        if self._async is not None:
            connections, self._async = self._async, None
            await connections.aclose()
        self.close()

    def local_rows(self, stmt: Select[Any], params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of one prebuilt statement read from the local SQLite file on its own: one statement is one
        snapshot (:attr:`local` only)."""
        return RawReader(self._sqlite(), self.db.reader.dialect).rows(stmt, params)

    def local_tuples(self, stmt: Select[Any], params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """:meth:`local_rows` as the driver's tuples."""
        return RawReader(self._sqlite(), self.db.reader.dialect).tuples(stmt, params)

    def size(self) -> LogSize:
        """The log's size now (see :data:`SIZE_SQL`)."""
        if self._path is not None:
            return size_of(self._sqlite().execute(SIZE_SQL).fetchone())
        with self.db.reader.connect() as conn:
            return size_of(conn.exec_driver_sql(SIZE_SQL).first())

    @contextmanager
    def snapshot(self) -> Iterator[RawReader]:
        """A :class:`RawReader` whose reads all see one committed state of the log."""
        if self._path is not None:
            conn = self._sqlite()
            conn.execute("BEGIN")
            try:
                yield RawReader(conn, self.db.reader.dialect)
            finally:
                conn.execute("COMMIT")
            return
        with self.db.reader.connect() as sa_conn:
            sa_conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                yield RawReader(sa_conn.connection.dbapi_connection, sa_conn.dialect)
            finally:
                sa_conn.rollback()

    def close(self) -> None:
        """Close every private connection (the reads open new ones if used again)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()


__all__ = [
    "LATEST_CHECKPOINT",
    "NODE_QUERY_STEP",
    "SIZE_SQL",
    "TAIL_LEVEL",
    "AsyncReads",
    "LogSize",
    "NodeCache",
    "ProofPlan",
    "RawReader",
    "Request",
    "SnapshotReads",
    "checkpoint_of",
    "inclusion_proof",
    "json_value",
    "latest_checkpoint",
    "log_size",
    "nodes_read",
    "nodes_request",
    "own_path",
    "read_nodes",
    "size_of",
    "warm_node_cache",
]
