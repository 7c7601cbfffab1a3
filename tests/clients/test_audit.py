"""``partsledger audit --url`` against a real server process: passes, resumes, and names tampered records."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from clients.sdk import PartsLedger
from ledger.canonical import canonical_bytes, parse_json
from ledger.keys import KeyPair, b64encode, read_key_file
from ledger.storage.db import normalize_url
from tests.clients.running import ROOT, RunningServer, cli, start_server

OPERATOR = "partsledger-operator"
RECORDS = 201  # genesis and 200 registrations


@pytest.fixture
def running(tmp_path: Path, db_url: str) -> Iterator[RunningServer]:
    server = start_server(tmp_path, db_url)
    try:
        operator = read_key_file(server.operator_key)
        with PartsLedger(server.url) as client:
            for start in range(1, RECORDS - 1, 100):
                client.append_batch([client.sign(operator, org=OPERATOR, type="org.register", body={
                    "org_id": f"shop-{i:04d}", "kind": "workshop", "name": f"Shop {i}",
                    "public_keys": [b64encode(KeyPair.generate().public_key)]}) for i in range(start, start + 100)])
        yield server
    finally:
        server.stop()


def _tamper(server: RunningServer, seq: int, *, fix_leaf_hash: bool) -> None:
    """What a dishonest operator with database access would do: drop the triggers and edit a record."""
    engine = create_engine(normalize_url(server.db_url))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER log_records_append_only ON log_records"))
        else:
            conn.execute(text("DROP TRIGGER log_records_no_update"))
        raw = conn.execute(text("SELECT record FROM log_records WHERE seq = :s"), {"s": seq}).scalar_one()
        record = parse_json(bytes(raw))
        record["entry"]["body"]["name"] = "Shop Rewritten"
        new = canonical_bytes(record)
        conn.execute(text("UPDATE log_records SET record = :r WHERE seq = :s"), {"r": new, "s": seq})
        if fix_leaf_hash:  # a careful forger also rewrites the stored leaf hash
            conn.execute(text("UPDATE log_records SET leaf_hash = :h WHERE seq = :s"),
                         {"h": hashlib.sha256(b"\x00" + new).digest(), "s": seq})
    engine.dispose()


def test_audit_passes_then_resumes_with_nothing_to_redo(running: RunningServer, tmp_path: Path) -> None:
    home = tmp_path / "auditor"
    first = cli("audit", "--url", running.url, "--page", "64", "--json", home=home)
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads(first.stdout)
    assert report["ok"] and report["records"] == RECORDS and report["checked_now"] == RECORDS
    assert report["orgs"] == RECORDS and report["keys"] == RECORDS
    assert report["compared"] == ["orgs", "keys", "parts", "installations"]
    again = cli("audit", "--url", running.url, "--json", home=home)
    assert json.loads(again.stdout)["checked_now"] == 0
    human = cli("audit", "--url", running.url, home=tmp_path / "other")
    assert human.returncode == 0 and f"ok: {RECORDS} records" in human.stdout


@pytest.mark.parametrize(("fix_leaf_hash", "reason"), [(False, "leaf hash"), (True, "signature")])
def test_audit_fails_naming_the_edited_record(running: RunningServer, tmp_path: Path, fix_leaf_hash: bool,
                                              reason: str) -> None:
    before = cli("audit", "--url", running.url, "--json", home=tmp_path / "auditor0")
    assert before.returncode == 0
    _tamper(running, 137, fix_leaf_hash=fix_leaf_hash)
    result = cli("audit", "--url", running.url, "--page", "50", "--json", home=tmp_path / "auditor")
    assert result.returncode == 1, result.stdout + result.stderr
    error = json.loads(result.stdout)
    assert error["ok"] is False and error["seq"] == 137 and reason in error["error"]
    human = cli("audit", "--url", running.url, home=tmp_path / "auditor2")
    assert human.returncode == 1 and "first bad seq: 137" in human.stderr and "Traceback" not in human.stderr


def test_killed_audit_resumes_and_checks_everything_once(running: RunningServer, tmp_path: Path) -> None:
    home = tmp_path / "auditor"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PARTSLEDGER_HOME": str(home)}
    # a slow audit (one record per request) killed part-way through
    process = subprocess.Popen([sys.executable, "-m", "clients.cli", "audit", "--url", running.url, "--page", "1"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = next(iter((home / "audit").glob("*.sqlite3")), None) if (home / "audit").exists() else None
    deadline = time.monotonic() + 60
    import sqlite3

    done = 0
    while time.monotonic() < deadline and done < 40:
        time.sleep(0.2)
        state = next(iter((home / "audit").glob("*.sqlite3")), None) if (home / "audit").exists() else None
        if state is not None:
            try:
                with sqlite3.connect(state) as db:
                    row = db.execute("SELECT value FROM meta WHERE name = 'next_seq'").fetchone()
                done = int(row[0]) if row else 0
            except sqlite3.OperationalError:
                continue
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 40 <= done < RECORDS, done
    result = cli("audit", "--url", running.url, "--json", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["resumed_from"] >= done and report["checked_now"] == RECORDS - report["resumed_from"]
    assert report["orgs"] == RECORDS and report["keys"] == RECORDS  # nothing applied twice


def test_audit_fails_when_the_servers_state_disagrees_with_the_log(running: RunningServer, tmp_path: Path) -> None:
    """The projections are not append-only; an operator editing them is caught by the replay comparison."""
    engine = create_engine(normalize_url(running.db_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE orgs SET kind = 'oem' WHERE org_id = 'shop-0007'"))
    engine.dispose()
    result = cli("audit", "--url", running.url, "--json", home=tmp_path / "auditor")
    assert result.returncode == 1, result.stdout + result.stderr
    error = json.loads(result.stdout)
    assert error["seq"] == 7 and "shop-0007" in error["error"]
