"""Tamper evidence (issue 2): whoever edits the stored log, ``partsledger verify`` names the first bad seq.

One database is populated once (a few hundred records appended in batches of
varying size, so there are dozens of checkpoints); every case then works on
its own copy — a SQLite file copy (online backup), or on PostgreSQL a schema
copy with the append-only triggers re-created. The attacker has the database
but not the log key or any org key. The triggers refuse UPDATE and DELETE on
the log tables (shown first, on the configured database), so each attack
starts by dropping them, as a real attacker with DDL rights would.

For each attack the real command line (``partsledger verify --db URL
--data-dir DIR``, run in process through typer's ``CliRunner``) must exit 1
and name the exact sequence number; on 20 untouched copies it must exit 0.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from clients.cli import app
from ledger.entries import build_entry, build_record, parse_record, sign_entry, utc_now
from ledger.keys import KeyPair, b64encode
from ledger.service import DEFAULT_ORIGIN, LedgerSettings, open_ledger
from ledger.storage.db import normalize_url
from tests.conftest import PG_URL, _pg_schema_url
from tests.support import World

LOG_TABLES = ("log_records", "log_nodes", "log_checkpoints")
UNTOUCHED_COPIES = 20
runner = CliRunner()


@dataclass
class Source:
    """The populated database and a way to copy it."""

    url: str
    data_dir: Path
    size: int
    checkpoints: int
    copy: Callable[[], str]


def _populate(url: str, data_dir: Path) -> tuple[int, int]:
    """A few hundred records in batches of 1..17 entries: one checkpoint per batch."""
    ledger = open_ledger(LedgerSettings(data_dir=data_dir, db_url=url))  # default origin, as the CLI assumes
    world = World.open(ledger, data_dir / "operator.key")
    shops = [world.register(f"shop-{i}", "workshop") for i in range(3)]
    batch = 0
    while ledger.size() < 300:
        batch += 1
        actor = shops[batch % 3]
        ledger.append_batch([
            world.entry(actor, "key.add", {"org_id": actor.org, "public_key": b64encode(KeyPair.generate().public_key)})
            for _ in range(1 + (batch * 7) % 17)
        ])
    cp = ledger.latest_checkpoint()
    assert cp is not None
    with ledger.db.read() as session:
        checkpoints = int(session.execute(text("SELECT count(*) FROM log_checkpoints")).scalar_one())
    ledger.db.dispose()
    return cp.size, checkpoints


def _sqlite_copier(src: Path, directory: Path) -> Callable[[], str]:
    def copy() -> str:
        dst = directory / f"copy-{uuid.uuid4().hex[:8]}.sqlite3"
        source, target = sqlite3.connect(src), sqlite3.connect(dst)
        try:
            source.backup(target)  # a consistent copy, WAL included
        finally:
            source.close()
            target.close()
        return f"sqlite:///{dst}"
    return copy


def _pg_copier(engine: Engine, template: str, made: list[str]) -> Callable[[], str]:
    """Copy every table of the template schema (rows, keys, indexes) and re-create its triggers."""
    def copy() -> str:
        schema = f"tc_{uuid.uuid4().hex[:16]}"
        made.append(schema)
        with engine.begin() as conn:
            tables = conn.execute(text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
                                       "AND table_type = 'BASE TABLE'"), {"s": template}).scalars().all()
            triggers = conn.execute(text(
                "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE c.relnamespace = CAST(:s AS regnamespace) AND NOT t.tgisinternal"), {"s": template}
            ).scalars().all()
            conn.execute(text(f"CREATE SCHEMA {schema}"))
            for table in tables:
                conn.execute(text(f"CREATE TABLE {schema}.{table} (LIKE {template}.{table} INCLUDING ALL)"))
                conn.execute(text(f"INSERT INTO {schema}.{table} SELECT * FROM {template}.{table}"))
            for definition in triggers:  # LIKE does not copy triggers: the copy is as protected as the original
                conn.execute(text(definition.replace(f" ON {template}.", f" ON {schema}.")))
        assert set(LOG_TABLES) <= set(tables) and len(triggers) >= 2 * len(LOG_TABLES)
        return _pg_schema_url(PG_URL or "", schema)
    return copy


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    base = tmp_path_factory.mktemp("tamper")
    data_dir = base / "data"
    if PG_URL:
        engine = create_engine(normalize_url(PG_URL))
        template = f"tt_{uuid.uuid4().hex[:16]}"
        made = [template]
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {template}"))
        url = _pg_schema_url(PG_URL, template)
        size, checkpoints = _populate(url, data_dir)
        yield Source(url, data_dir, size, checkpoints, _pg_copier(engine, template, made))
        with engine.begin() as conn:
            for schema in made:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()
    else:
        path = base / "source.sqlite3"
        url = f"sqlite:///{path}"
        size, checkpoints = _populate(url, data_dir)
        yield Source(url, data_dir, size, checkpoints, _sqlite_copier(path, base))
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def connect() -> Iterator[Callable[[str], Connection]]:
    """Raw connections to copies, as the attacker has them; closed after the test."""
    engines: list[Engine] = []
    conns: list[Connection] = []

    def open_(url: str) -> Connection:
        engine = create_engine(normalize_url(url))
        engines.append(engine)
        conns.append(engine.connect())
        return conns[-1]

    yield open_
    for conn in conns:
        conn.close()
    for engine in engines:
        engine.dispose()


def drop_triggers(conn: Connection) -> int:
    """What an attacker with DDL rights does first: drop the append-only triggers (the copy has them too)."""
    with pytest.raises(DBAPIError, match="append-only"):
        conn.execute(text("DELETE FROM log_records WHERE seq = 1"))
    conn.rollback()
    if conn.dialect.name == "sqlite":
        names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars().all()
        statements = [f"DROP TRIGGER {name}" for name in names]
    else:
        rows = conn.execute(text(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relnamespace = CAST(current_schema() AS regnamespace) AND NOT t.tgisinternal"
        )).all()
        statements = [f"DROP TRIGGER {name} ON {table}" for name, table in rows]
    for statement in statements:
        conn.execute(text(statement))
    conn.commit()
    return len(statements)


def verify_cli(url: str, data_dir: Path, *extra: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["verify", "--db", url, "--data-dir", str(data_dir), *extra],
                           env={"PARTSLEDGER_ORIGIN": None, "PARTSLEDGER_DB": None})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_names(url: str, data_dir: Path, seq: int, words: str) -> None:
    """Human and --json output both fail with exit 1 and name ``seq`` and what is wrong."""
    code, stdout, stderr = verify_cli(url, data_dir)
    assert code == 1, (stdout, stderr)
    assert stderr.count("\n") == 1, stderr  # one line, however long
    message = stderr.strip()
    assert message.endswith(f"(first bad seq: {seq})"), message
    assert re.search(words, message), message
    assert "Traceback" not in stderr
    code, stdout, _ = verify_cli(url, data_dir, "--json")
    assert code == 1
    report = json.loads(stdout)
    assert report["ok"] is False and report["seq"] == seq, report


def record_row(conn: Connection, seq: int) -> tuple[bytes, bytes]:
    row = conn.execute(text("SELECT record, leaf_hash FROM log_records WHERE seq = :s"), {"s": seq}).one()
    return bytes(row[0]), bytes(row[1])


# --- the triggers ----------------------------------------------------------------------------------------------


def test_triggers_refuse_update_delete_and_truncate_on_the_log_tables(world: World) -> None:
    """On the migrated schema itself (SQLite or PostgreSQL, whichever the suite runs on)."""
    for i in range(3):
        world.register(f"shop-{i}", "workshop")
    engine = create_engine(world.ledger.db.url)
    attempts = [
        "UPDATE log_records SET record = record WHERE seq = 2",
        "UPDATE log_records SET leaf_hash = prev_hash WHERE seq = 3",
        "DELETE FROM log_records WHERE seq = 3",
        "UPDATE log_nodes SET hash = hash WHERE level = 0 AND idx = 1",
        "DELETE FROM log_nodes WHERE level = 1",
        "UPDATE log_checkpoints SET note = note WHERE size = 4",
        "DELETE FROM log_checkpoints",
    ]
    if engine.dialect.name == "postgresql":
        attempts += [f"TRUNCATE {table}" for table in LOG_TABLES]
    try:
        with engine.connect() as conn:
            before = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in LOG_TABLES}
            for statement in attempts:
                with pytest.raises(DBAPIError, match="append-only"):
                    conn.execute(text(statement))
                conn.rollback()
            after = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in LOG_TABLES}
            conn.rollback()
    finally:
        engine.dispose()
    assert before == after == {"log_records": 4, "log_nodes": 7, "log_checkpoints": 4}
    assert world.ledger.record(3).entry.body["org_id"] == "shop-2"


# --- untouched copies ------------------------------------------------------------------------------------------


def test_untouched_copies_verify(source: Source) -> None:
    assert source.size >= 300 and source.checkpoints >= 20
    for _ in range(UNTOUCHED_COPIES):
        url = source.copy()
        code, stdout, stderr = verify_cli(url, source.data_dir)
        assert code == 0, stderr
        assert stdout.count("\n") == 1 and stdout.startswith(f"ok: {source.size} records, {source.size} signatures")
        assert f"{source.checkpoints} checkpoints verified" in stdout
        assert "not checked" not in stdout  # checkpoint signatures were checked with the log key


# --- attacks ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_one_changed_byte_in_a_record(source: Source, connect: Callable[[str], Connection], where: float) -> None:
    url = source.copy()
    conn = connect(url)
    drop_triggers(conn)
    seq = 137
    raw, _ = record_row(conn, seq)
    at = int(len(raw) * where)
    forged = raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1:]
    conn.execute(text("UPDATE log_records SET record = :r WHERE seq = :s"), {"r": forged, "s": seq})
    conn.commit()
    assert_names(url, source.data_dir, seq, r"record 137")


def test_changed_signed_byte_with_every_stored_hash_recomputed(source: Source,
                                                               connect: Callable[[str], Connection]) -> None:
    """A careful attacker also rewrites leaf_hash and entry_id to match; the entry signature still fails."""
    url = source.copy()
    conn = connect(url)
    drop_triggers(conn)
    seq = 211
    raw, _ = record_row(conn, seq)
    at = raw.index(b'"public_key":"') + len(b'"public_key":"') + 5
    forged = raw[:at] + (b"B" if raw[at:at + 1] != b"B" else b"C") + raw[at + 1:]
    record = parse_record(forged)  # still a well-formed canonical record
    conn.execute(text("UPDATE log_records SET record = :r, leaf_hash = :h, entry_id = :e WHERE seq = :s"),
                 {"r": forged, "h": record.leaf_hash, "e": record.entry.entry_id, "s": seq})
    conn.commit()
    assert_names(url, source.data_dir, seq, rf"record {seq}: bad signature")


def test_changed_leaf_hash_column(source: Source, connect: Callable[[str], Connection]) -> None:
    url = source.copy()
    conn = connect(url)
    drop_triggers(conn)
    conn.execute(text("UPDATE log_records SET leaf_hash = :h WHERE seq = 88"), {"h": b"\x42" * 32})
    conn.commit()
    assert_names(url, source.data_dir, 88, r"record 88: stored leaf/prev hash does not match")


@pytest.mark.parametrize(("level", "idx"), [(0, 201), (3, 9)])
def test_changed_merkle_node_hash(source: Source, connect: Callable[[str], Connection], level: int, idx: int) -> None:
    url = source.copy()
    conn = connect(url)
    drop_triggers(conn)
    done = conn.execute(text("UPDATE log_nodes SET hash = :h WHERE level = :l AND idx = :i"),
                        {"h": b"\x13" * 32, "l": level, "i": idx})
    assert done.rowcount == 1
    conn.commit()
    assert_names(url, source.data_dir, idx << level, rf"Merkle node \({level}, {idx}\) does not match")


def test_swapped_records(source: Source, connect: Callable[[str], Connection]) -> None:
    url = source.copy()
    conn = connect(url)
    drop_triggers(conn)
    first, _ = record_row(conn, 150)
    second, _ = record_row(conn, 151)
    conn.execute(text("UPDATE log_records SET record = :r WHERE seq = 150"), {"r": second})
    conn.execute(text("UPDATE log_records SET record = :r WHERE seq = 151"), {"r": first})
    conn.commit()
    assert_names(url, source.data_dir, 150, r"record 150: its bytes say seq 151")


def test_deleted_middle_record(source: Source, connect: Callable[[str], Connection]) -> None:
    url = source.copy()
    conn = connect(url)
    drop_triggers(conn)
    conn.execute(text("DELETE FROM log_records WHERE seq = 120"))
    conn.commit()
    assert_names(url, source.data_dir, 120, r"gap: record 120 is missing")


@pytest.mark.parametrize("k", [1, 25])
def test_truncated_tail_with_checkpoints_kept(source: Source, connect: Callable[[str], Connection], k: int) -> None:
    url = source.copy()
    conn = connect(url)
    drop_triggers(conn)
    conn.execute(text("DELETE FROM log_records WHERE seq >= :s"), {"s": source.size - k})
    conn.commit()
    assert_names(url, source.data_dir, source.size - k, r"log_shrunk: log shrunk")


@pytest.mark.parametrize("how", ["unregistered key", "bad signature"])
def test_forged_record_appended(source: Source, connect: Callable[[str], Connection], how: str) -> None:
    """Well-formed and correctly chained (prev = leaf of the last record), with its Merkle leaf node too."""
    url = source.copy()
    conn = connect(url)
    drop_triggers(conn)
    seq = source.size
    _, prev = record_row(conn, seq - 1)
    key = KeyPair.generate()
    kid = key.kid
    if how == "bad signature":  # names a registered key of shop-1, signed by a key that is not it
        kid = conn.execute(text("SELECT kid FROM org_keys WHERE org_id = 'shop-1' ORDER BY added_seq LIMIT 1")
                           ).scalar_one()
    entry = build_entry(origin=DEFAULT_ORIGIN, type="key.add", org="shop-1", kid=kid,
                        body={"org_id": "shop-1", "public_key": b64encode(KeyPair.generate().public_key)})
    signed = sign_entry(entry, key)
    record = build_record(seq, prev, utc_now(), signed)
    conn.execute(text(
        "INSERT INTO log_records (seq, entry_id, prev_hash, leaf_hash, entry_type, org_id, logged_at, record) "
        "VALUES (:seq, :eid, :prev, :leaf, 'key.add', 'shop-1', :logged, :record)"
    ), {"seq": seq, "eid": signed.entry_id, "prev": prev, "leaf": record.leaf_hash, "logged": record.logged,
        "record": record.canonical})
    conn.execute(text("INSERT INTO log_nodes (level, idx, hash) VALUES (0, :i, :h)"), {"i": seq, "h": record.leaf_hash})
    conn.commit()
    words = r"bad signature" if how == "bad signature" else r"not a registered key"
    assert_names(url, source.data_dir, seq, rf"record {seq}: .*{words}")
