"""Concurrency evidence (issue 2): many processes appending to one log never fork it.

Eight separate processes each open their own :class:`~ledger.log.Ledger` on the
same database URL and data directory (shared log key and operator key) and
append 200 entries each, all starting together. Afterwards the checker in
:mod:`tests.workers.audit` must find 0 forks, 0 gaps, 0 duplicates and 0 lost
acknowledged entries, every receipt's inclusion proof must verify against its
checkpoint, the final checkpoint must be consistent with every checkpoint a
client was given, and ``verify_database`` must pass.

The negative controls show the checker is not blind:

* PostgreSQL without the append lock (``Database(url, lock_appends=False)``):
  with the schema's unique constraints, appenders that read the same head
  collide on them (conflicting-head failures); with those constraints dropped
  in a scratch schema, the fork goes through and the checker reports the
  duplicate sequence numbers, the two records claiming one predecessor and
  the disagreeing checkpoints, and ``verify`` names the first forked seq.
* SQLite with a deferred ``BEGIN``: what really happens is *not* a fork. In WAL
  mode a deferred transaction that read the head and then tries to write
  after another process committed cannot upgrade its stale read snapshot:
  SQLite answers ``SQLITE_BUSY_SNAPSHOT`` ("database is locked") at once,
  without waiting. So the control shows appenders failing with that error
  (which ``BEGIN IMMEDIATE`` avoids), and the log staying consistent. Since
  SQLite itself cannot fork, the checker's fork detection is shown on SQLite
  with a split-brain: two copies of one log, each appended to, merged into one
  scratch database without the unique constraints.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ledger.keys import KeyPair, b64encode, write_key_file
from ledger.log import Ledger
from ledger.service import LedgerSettings, open_ledger
from ledger.storage.db import normalize_url
from tests.conftest import PG_URL
from tests.support import World
from tests.workers.audit import audit_log

REPO = Path(__file__).resolve().parents[2]
ORIGIN = "test.partsledger/log"
PROCESSES = 8
APPENDS = 200

pytestmark = pytest.mark.slow


_OPENED: list[Ledger] = []


@pytest.fixture(autouse=True)
def _dispose_ledgers() -> Iterator[None]:
    """Close every pool a test opened, so no connection outlives its test (and warns in another one)."""
    yield
    while _OPENED:
        _OPENED.pop().db.dispose()


def _open(data_dir: Path, url: str) -> Ledger:
    ledger = open_ledger(LedgerSettings(data_dir=data_dir, db_url=url, origin=ORIGIN))
    _OPENED.append(ledger)
    return ledger


def _prepare(tmp_path: Path, url: str, orgs: int = PROCESSES) -> tuple[Ledger, list[tuple[str, Path]]]:
    """Open the log, register one workshop per worker and write its key file."""
    data_dir = tmp_path / "data"
    ledger = _open(data_dir, url)
    world = World.open(ledger, data_dir / "operator.key")
    actors = []
    for i in range(orgs):
        org = f"shop-{i:02d}"
        actor = world.register(org, "workshop")
        key_file = tmp_path / "orgs" / f"{org}.key"
        write_key_file(key_file, actor.key)
        actors.append((org, key_file))
    return ledger, actors


def _run_workers(tmp_path: Path, url: str, actors: list[tuple[str, Path]], count: int,
                 *extra: str) -> list[dict[str, Any]]:
    """Start one appender process per actor, release them together, return their JSON results."""
    run = tmp_path / f"run-{time.monotonic_ns()}"
    run.mkdir()
    go = run / "go"
    procs = []
    for i, (org, key_file) in enumerate(actors):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.workers.appender", "--db", url, "--data-dir", str(tmp_path / "data"),
             "--origin", ORIGIN, "--org", org, "--key-file", str(key_file), "--count", str(count),
             "--out", str(run / f"out-{i}.json"), "--ready", str(run / f"ready-{i}"), "--go", str(go), *extra],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    try:
        deadline = time.monotonic() + 120
        while not all((run / f"ready-{i}").exists() for i in range(len(actors))):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            assert not failed, failed[0].communicate()[1]
            assert time.monotonic() < deadline, "workers did not get ready"
            time.sleep(0.02)
        go.touch()
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()  # reap it and close its pipes
    return [json.loads((run / f"out-{i}.json").read_text()) for i in range(len(actors))]


def _receipts(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for result in results for r in result["receipts"]]


def _errors(results: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [e for result in results for e in result["errors"]]


# --- the evidence -----------------------------------------------------------------------------------------------


def test_eight_processes_append_200_each_with_no_fork_gap_duplicate_or_loss(tmp_path: Path, db_url: str) -> None:
    ledger, actors = _prepare(tmp_path, db_url)
    before = ledger.size()
    started = time.monotonic()
    results = _run_workers(tmp_path, db_url, actors, APPENDS)
    elapsed = time.monotonic() - started

    assert _errors(results) == []
    receipts = _receipts(results)
    assert len(receipts) == PROCESSES * APPENDS
    # Receipts name every new seq exactly once, and no entry id twice.
    assert sorted(r["seq"] for r in receipts) == list(range(before, before + PROCESSES * APPENDS))
    assert len({r["entry_id"] for r in receipts}) == len(receipts)
    assert not any(r["duplicate"] for r in receipts)
    # Every worker's own receipts come back in increasing seq order (its appends are sequential).
    for result in results:
        seqs = [r["seq"] for r in result["receipts"]]
        assert seqs == sorted(seqs)

    audit = audit_log(ledger, receipts)
    assert audit.problems == []
    assert audit.records == before + PROCESSES * APPENDS
    assert audit.receipts == PROCESSES * APPENDS
    assert ledger.size() == audit.records
    # The appends really interleaved: the log is not eight runs of 200 one after another.
    org_of = {r["seq"]: result["org"] for result in results for r in result["receipts"]}
    writers = [org_of[seq] for seq in sorted(org_of)]
    switches = sum(1 for a, b in itertools.pairwise(writers) if a != b)
    assert switches > PROCESSES, f"only {switches} switches between writers in {elapsed:.1f}s"
    print(f"\n{PROCESSES}x{APPENDS} appends on {ledger.db.dialect}: {elapsed:.1f}s, "
          f"{PROCESSES * APPENDS / elapsed:.0f} appends/s, {switches} writer switches, "
          f"{audit.checkpoints} distinct checkpoints checked")


# --- negative controls ------------------------------------------------------------------------------------------


def _drop_uniqueness(url: str) -> None:
    """Scratch-schema surgery: drop every primary key, unique constraint and unique index in the schema.

    The log tables' keys are what would stop a fork; projection tables keyed by seq would too. The
    entries of the run are all distinct, so nothing else depends on them.
    """
    engine = create_engine(normalize_url(url))
    in_schema = "CAST(current_schema() AS regnamespace)"
    with engine.begin() as conn:
        for table, name in conn.execute(text(
            f"SELECT CAST(conrelid AS regclass), conname FROM pg_constraint WHERE connamespace = {in_schema} "
            "AND contype IN ('p', 'u')"
        )).all():
            conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{name}" CASCADE'))
        for (index,) in conn.execute(text(
            "SELECT CAST(i.indexrelid AS regclass) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            f"WHERE c.relnamespace = {in_schema} AND i.indisunique"
        )).all():
            conn.execute(text(f"DROP INDEX {index}"))
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="needs PARTSLEDGER_TEST_DB (PostgreSQL)")
def test_negative_control_postgres_without_the_lock_fails_or_forks(
    tmp_path: Path, db_url_factory: Callable[[], str]
) -> None:
    count = 30
    # 1. No lock, constraints in place: appenders that read the same head collide on seq/prev_hash.
    url = db_url_factory()
    ledger, actors = _prepare(tmp_path / "constrained", url)
    results = _run_workers(tmp_path / "constrained", url, actors, count, "--no-lock")
    errors = _errors(results)
    assert errors, "no conflicting-head failure without the lock: the control did not exercise the race"
    assert all(e["type"] == "IntegrityError" and "duplicate key" in e["message"] for e in errors), errors[:3]
    assert len(_receipts(results)) + len(errors) == PROCESSES * count
    audit = audit_log(ledger, _receipts(results))
    assert audit.problems == []  # the constraints held the line; the lock is what makes appends succeed

    # 2. No lock, constraints dropped: the fork goes through and the checker must report it.
    url = db_url_factory()
    ledger, actors = _prepare(tmp_path / "forked", url)
    _drop_uniqueness(url)
    results = _run_workers(tmp_path / "forked", url, actors, count, "--no-lock")
    audit = audit_log(ledger, _receipts(results))
    assert audit.duplicate_seqs, (audit.problems, _errors(results)[:5])
    assert any("claim the same predecessor" in f for f in audit.forks)
    assert audit.verify_error is not None
    assert audit.verify_seq == audit.duplicate_seqs[0]
    print(f"\nno lock on PostgreSQL: {len(errors)} conflicting-head failures with constraints; without them "
          f"{len(audit.duplicate_seqs)} duplicated seqs, {len(audit.forks)} forks; verify: {audit.verify_error}")


sqlite_only = pytest.mark.skipif(bool(PG_URL), reason="about SQLite itself: runs in the SQLite session")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """These controls are about SQLite itself, so they use a SQLite file whatever PARTSLEDGER_TEST_DB says."""
    return f"sqlite:///{tmp_path / 'control.sqlite3'}"


@sqlite_only
def test_negative_control_sqlite_deferred_begin_fails_with_database_locked(tmp_path: Path, sqlite_url: str) -> None:
    """With a deferred BEGIN, SQLite refuses the stale writers ("database is locked"); it cannot fork.

    The same workers with ``BEGIN IMMEDIATE`` (the default) get no failure at all: that is the main test.
    """
    count = 30
    ledger, actors = _prepare(tmp_path, sqlite_url)
    results = _run_workers(tmp_path, sqlite_url, actors, count, "--deferred-sqlite")
    errors = _errors(results)
    receipts = _receipts(results)
    assert errors, "every deferred appender succeeded: the control did not exercise the race"
    assert {(e["type"], e["message"]) for e in errors} == {("OperationalError", "(sqlite3.OperationalError) "
                                                             "database is locked")}
    assert len(receipts) + len(errors) == PROCESSES * count
    audit = audit_log(ledger, receipts)
    assert audit.problems == []
    assert audit.records == 1 + PROCESSES + len(receipts)
    print(f"\ndeferred BEGIN on SQLite: {len(errors)} of {PROCESSES * count} appends failed with "
          "'database is locked', 0 forks")


def _rebuild_without_uniqueness(path: Path) -> None:
    """Recreate the three log tables in a SQLite scratch file without keys, constraints or triggers."""
    conn = sqlite3.connect(path)
    with conn:
        for table, columns in (
            ("log_records", "seq, entry_id, prev_hash, leaf_hash, entry_type, org_id, logged_at, record"),
            ("log_nodes", "level, idx, hash"),
            ("log_checkpoints", "size, root, note, created_at"),
        ):
            conn.execute(f"CREATE TABLE {table}_loose AS SELECT {columns} FROM {table}")
            conn.execute(f"DROP TABLE {table}")
            conn.execute(f"ALTER TABLE {table}_loose RENAME TO {table}")
    conn.close()


@sqlite_only
def test_checker_reports_a_split_brain_fork_on_sqlite(tmp_path: Path, sqlite_url: str) -> None:
    """Two copies of one log each accept different appends; merged, the checker and verify name the fork."""
    ledger, actors = _prepare(tmp_path, sqlite_url, orgs=2)
    base = ledger.size()
    ledger.db.dispose()
    main_file = Path(sqlite_url.removeprefix("sqlite:///"))
    twin_file = tmp_path / "twin.sqlite3"
    src = sqlite3.connect(main_file)
    dst = sqlite3.connect(twin_file)
    src.backup(dst)
    src.close()
    dst.close()
    twin_dir = tmp_path / "twin-data"
    shutil.copytree(tmp_path / "data", twin_dir)

    main_results = _run_workers(tmp_path, sqlite_url, actors[:1], 5)
    twin_url = f"sqlite:///{twin_file}"
    twin = _open(twin_dir, twin_url)
    world = World.open(twin, twin_dir / "operator.key")
    twin_receipts = [world.append(world.operator, "key.add", {"org_id": "partsledger-operator",
                                                              "public_key": b64encode(KeyPair.generate().public_key)})
                     .to_json() for _ in range(3)]
    twin.db.dispose()

    _rebuild_without_uniqueness(main_file)
    conn = sqlite3.connect(main_file)
    with conn:
        conn.execute("ATTACH DATABASE ? AS twin", (str(twin_file),))
        conn.execute("INSERT INTO log_records SELECT seq, entry_id, prev_hash, leaf_hash, entry_type, org_id,"
                     " logged_at, record FROM twin.log_records WHERE seq >= ?", (base,))
        conn.execute("INSERT INTO log_nodes SELECT level, idx, hash FROM twin.log_nodes WHERE idx << level >= ?",
                     (base,))
        conn.execute("INSERT INTO log_checkpoints SELECT size, root, note, created_at FROM twin.log_checkpoints"
                     " WHERE size > ?", (base,))
    conn.execute("DETACH DATABASE twin")
    conn.close()

    merged = _open(tmp_path / "data", sqlite_url)
    audit = audit_log(merged, _receipts(main_results) + twin_receipts)
    assert audit.duplicate_seqs == [base, base + 1, base + 2]
    assert f"fork: records [{base}, {base}] all claim the same predecessor" in audit.forks
    assert any("signed checkpoints of size" in f and "different roots" in f for f in audit.forks)
    assert audit.verify_seq == base
    assert audit.verify_error is not None and "fork" in audit.verify_error
