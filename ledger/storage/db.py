"""The database seam: engines, sessions, the append lock and migrations.

SQLite (embedded default) runs in WAL mode with ``synchronous=FULL`` over pooled
connections (kept open between transactions); every
writing transaction starts with ``BEGIN IMMEDIATE`` so that two appenders can
never both read the same head (a deferred ``BEGIN`` that reads then writes
forks or fails). Readers use a separate engine with deferred transactions so
scans never wait for the writer.

PostgreSQL (production) takes a transaction-scoped advisory lock
(``pg_advisory_xact_lock``) at the start of every appending transaction and
then reads the head inside it; no head is ever cached between transactions.
The lock's key is derived from :data:`APPEND_LOCK_KEY` and the database and
schema the log lives in: every writer of one log takes the same lock, while
logs in other schemas or databases of the same server (advisory locks are
server-wide) do not wait for each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import QueuePool
from sqlmodel import Session

from ledger.errors import InvalidInput, NotFound

APPEND_LOCK_KEY = 0x70617274736C6467  # "partsldg"
_PG_APPEND_LOCK = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(current_database() || '/' || current_schema(), :k))")


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` URLs and use psycopg 3; pass others through."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _sqlite_engine(url: str, *, immediate: bool, busy_timeout_ms: int, pool_size: int,
                   cache_kib: int | None = None) -> Engine:
    """``cache_kib``: each connection's page cache (SQLite's default of about 2 MiB when ``None``)."""
    if ":memory:" in url:
        engine = create_engine(url)
    else:
        # Pooled connections: closing a connection after every transaction (NullPool) made SQLite
        # checkpoint the WAL and fsync the database file on every append. Durability does not depend
        # on it: every commit is durable in the WAL itself (synchronous=FULL). A caller waits for a
        # free connection no longer than it would wait for the lock.
        engine = create_engine(url, poolclass=QueuePool, pool_size=pool_size, max_overflow=4 * pool_size,
                               pool_timeout=max(1.0, busy_timeout_ms / 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, emit BEGIN (the documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if cache_kib is not None:
            cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


#: The SQLite writer connections' page cache, in KiB.
WRITER_CACHE_KIB = 65_536


class Database:
    """One logical database: a writer engine, a reader engine, migrations."""

    def __init__(self, url: str, *, pool_size: int = 10, busy_timeout_ms: int = 30_000,
                 deferred_sqlite_writes: bool = False, lock_appends: bool = True, must_exist: bool = False) -> None:
        """``must_exist``: refuse a SQLite path with no file instead of creating one (read-only tools)."""
        self.url = normalize_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise InvalidInput("not a database URL (use sqlite:///PATH or postgresql://...)",  # may hold a password
                               code="invalid_field", field="db") from None
        self.dialect = parsed.get_backend_name()
        self.lock_appends = lock_appends
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                if must_exist and not Path(parsed.database).is_file():
                    raise NotFound(f"no database file at {parsed.database}", field="db")
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # ``deferred_sqlite_writes`` exists only so tests can show what a deferred BEGIN does under
            # concurrency (a negative control): in WAL mode the stale writers fail with "database is locked".
            # Appends take turns (BEGIN IMMEDIATE; group commit gives one writer per process), so the
            # writer needs few connections; readers run side by side.
            # The writer's page cache holds the index pages a batch's random keys (entry ids, hashes) touch;
            # readers read what the operating system's cache holds, and a whole-log read (verify, export) keeps
            # a small, fixed footprint whatever the log's size.
            self.writer = _sqlite_engine(self.url, immediate=not deferred_sqlite_writes,
                                         busy_timeout_ms=busy_timeout_ms, pool_size=2, cache_kib=WRITER_CACHE_KIB)
            self.reader = _sqlite_engine(self.url, immediate=False, busy_timeout_ms=busy_timeout_ms,
                                         pool_size=pool_size)
        elif self.dialect == "postgresql":
            self.writer = create_engine(self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            self.reader = self.writer
        else:
            raise InvalidInput(f"unsupported database {self.dialect!r}: use sqlite:///PATH or postgresql://...",
                               code="invalid_field", field="db")

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A writing transaction that holds the append lock until it commits or rolls back.

        Commits on normal exit (durably: WAL + synchronous=FULL on SQLite,
        default fsync on PostgreSQL); rolls back on any exception.
        """
        with Session(self.writer, expire_on_commit=False) as session:
            with session.begin():
                if self.dialect == "postgresql" and self.lock_appends:
                    session.execute(_PG_APPEND_LOCK, {"k": APPEND_LOCK_KEY})
                yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (deferred on SQLite, so it never blocks the writer)."""
        with Session(self.reader, expire_on_commit=False) as session, session.begin():
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from ledger.storage.migrate import upgrade_to_head

        upgrade_to_head(self)

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


__all__ = ["APPEND_LOCK_KEY", "Database", "normalize_url"]
