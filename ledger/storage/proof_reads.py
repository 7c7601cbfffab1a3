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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
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
SIZE_SQL = "SELECT (SELECT max(seq) FROM log_records), (SELECT max(size) FROM log_checkpoints)"

LogSize = tuple[int, int]

_LATEST = (select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
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


def _size_of(row: Sequence[Any] | None) -> LogSize:
    if row is None:
        return (0, 0)
    records = 0 if row[0] is None else int(row[0]) + 1
    return (records, 0 if row[1] is None else int(row[1]))


def log_size(reader: RawReader) -> LogSize:
    """``(records, newest checkpoint size)`` in the reader's snapshot."""
    found = reader.execute(SIZE_SQL)
    return _size_of(found[0] if found else None)


def latest_checkpoint(reader: RawReader) -> tuple[int, bytes, str] | None:
    """``(size, root, signed note)`` of the newest checkpoint, or ``None`` for an empty log."""
    row = reader.first(_LATEST)
    return None if row is None else (int(row["size"]), bytes(row["root"]), str(row["note"]))


class NodeCache:
    """Stored Merkle node hashes by ``(level, index)``, least recently used first out (thread-safe)."""

    def __init__(self, maxsize: int = 65_536) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[merkle.NodeKey, bytes] = OrderedDict()
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

    def add(self, nodes: Mapping[merkle.NodeKey, bytes]) -> None:
        with self._lock:
            self._items.update(nodes)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)


@functools.lru_cache(maxsize=256)
def _nodes_query(shape: tuple[int, ...]) -> Select[Any]:
    """Nodes ``(level = :l0 AND idx IN (:i0_0, ...)) OR (level = :l1 AND ...)``, ``shape[j]`` indexes at the
    j-th level: one statement that SQLite (a multi-index OR) and PostgreSQL (a bitmap OR) both answer from
    the primary key; a row-value ``IN ((level, idx), ...)`` makes SQLite scan the whole node table. Cached
    by shape, so each statement keeps its identity and is compiled once per dialect."""
    terms = [and_(NODES.c.level == bindparam(f"l{j}"), NODES.c.idx.in_([bindparam(f"i{j}_{k}") for k in range(n)]))
             for j, n in enumerate(shape)]
    return select(NODES.c.level, NODES.c.idx, NODES.c.hash).where(or_(*terms))


def read_nodes(reader: RawReader, keys: Sequence[merkle.NodeKey],
               cache: NodeCache | None = None) -> dict[merkle.NodeKey, bytes]:
    """The stored hashes of ``keys`` (absent keys are absent from the answer), in at most one query."""
    wanted = list(dict.fromkeys(keys))
    found, missing = cache.lookup(wanted) if cache is not None else ({}, wanted)
    if not missing:
        return found
    by_level: dict[int, list[int]] = {}
    for level, idx in missing:
        by_level.setdefault(level, []).append(idx)
    params: dict[str, int] = {}
    for j, (level, idxs) in enumerate(by_level.items()):
        params[f"l{j}"] = level
        params.update({f"i{j}_{k}": idx for k, idx in enumerate(idxs)})
    fetched = {(int(level), int(idx)): bytes(value)
               for level, idx, value in reader.tuples(_nodes_query(tuple(len(i) for i in by_level.values())), params)}
    if cache is not None and fetched:
        cache.add(fetched)
    found.update(fetched)
    return found


def inclusion_proof(reader: RawReader, seq: int, size: int,
                    cache: NodeCache | None = None) -> tuple[bytes, list[bytes]]:
    """``(leaf hash, RFC 9162 proof)`` of record ``seq`` in the tree of ``size``, from stored nodes.

    The leaf is read with the proof's nodes: one query for whatever the node cache lacks.
    """
    leaf: list[bytes] = []

    def get(keys: Sequence[merkle.NodeKey]) -> Mapping[merkle.NodeKey, bytes]:
        nodes = read_nodes(reader, [*keys, (0, seq)], cache)
        if (0, seq) in nodes and not leaf:
            leaf.append(nodes[(0, seq)])
        return nodes

    proof = merkle.inclusion_proof(seq, size, get)
    if not leaf:  # an empty proof (a one-leaf tree) reads no node
        get([])
    if not leaf or len(leaf[0]) != merkle.HASH_SIZE:
        raise IntegrityError(f"Merkle node (level=0, index={seq}) is missing from the store or malformed")
    return leaf[0], proof


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

    def __init__(self, db: Database, *, busy_timeout_ms: int = 1000) -> None:
        self.db = db
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
            url = make_url(self.db.url).set(drivername="postgresql")
            self._aconn = await psycopg.AsyncConnection.connect(url.render_as_string(hide_password=False),
                                                                autocommit=True)
        try:
            cursor = await self._aconn.execute(SIZE_SQL)
            return _size_of(await cursor.fetchone())
        except psycopg.Error:
            await self._aconn.close()
            self._aconn = None
            raise

    async def aclose(self) -> None:
        """Close the asyncio connection (in the loop that opened it), then the rest (:meth:`close`)."""
        if self._aconn is not None:
            await self._aconn.close()
            self._aconn = None
        self.close()

    def size(self) -> LogSize:
        """The log's size now (see :data:`SIZE_SQL`)."""
        if self._path is not None:
            return _size_of(self._sqlite().execute(SIZE_SQL).fetchone())
        with self.db.reader.connect() as conn:
            return _size_of(conn.exec_driver_sql(SIZE_SQL).first())

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


__all__ = ["SIZE_SQL", "LogSize", "NodeCache", "RawReader", "SnapshotReads", "inclusion_proof", "json_value",
           "latest_checkpoint", "log_size", "read_nodes"]
