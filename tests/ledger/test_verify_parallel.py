"""``verify_database`` with its signatures checked in helper processes still names the first bad record.

The tampered copies come from the fixtures of ``test_tamper`` (same attacker: DDL rights, no keys). Each case
is verified with signatures checked here (``signature_workers=0``) and in helper processes, and both must name
the same seq and the same fault.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import nacl.signing
import pytest
from sqlalchemy import Connection, text

from ledger.entries import parse_record
from ledger.errors import IntegrityError
from ledger.keys import read_key_file
from ledger.service import LedgerSettings
from ledger.sigpool import PARALLEL_MIN_RECORDS, SignaturePool, default_workers, verify_items
from ledger.storage.db import Database
from ledger.verify import verify_database
from tests.ledger import test_tamper as tamper
from tests.ledger.test_tamper import Source, drop_triggers, record_row

source = tamper.source  # the populated database, copied per test
connect = tamper.connect

WORKERS = (0, 1, 2)


def _verify(source: Source, url: str, workers: int) -> IntegrityError | int:
    db = Database(url)
    try:
        public = read_key_file(LedgerSettings(data_dir=source.data_dir, db_url=url).log_key_path).public_key
        return verify_database(db, log_public_key=public, signature_workers=workers).records
    except IntegrityError as exc:
        return exc
    finally:
        db.dispose()


def _forge_signed_byte(conn: Connection, seq: int) -> None:
    """Change one signed byte and recompute every stored hash: only the signature can tell."""
    raw, _ = record_row(conn, seq)
    at = raw.index(b'"public_key":"') + len(b'"public_key":"') + 5
    forged = raw[:at] + (b"B" if raw[at:at + 1] != b"B" else b"C") + raw[at + 1:]
    record = parse_record(forged)
    conn.execute(text("UPDATE log_records SET record = :r, leaf_hash = :h, entry_id = :e WHERE seq = :s"),
                 {"r": forged, "h": record.leaf_hash, "e": record.entry.entry_id, "s": seq})


def test_untouched_copy_verifies_the_same_with_and_without_helpers(source: Source) -> None:
    url = source.copy()
    assert [_verify(source, url, w) for w in WORKERS] == [source.size] * len(WORKERS)


def test_a_bad_signature_is_named_with_helpers(source: Source, connect: Callable[[str], Connection]) -> None:
    url = source.copy()
    conn = connect(url)
    drop_triggers(conn)
    _forge_signed_byte(conn, 211)
    conn.commit()
    for workers in WORKERS:
        found = _verify(source, url, workers)
        assert isinstance(found, IntegrityError) and found.seq == 211, (workers, found)
        assert "bad signature" in found.message


def test_an_earlier_bad_signature_wins_over_a_later_fault_found_first(
        source: Source, connect: Callable[[str], Connection]) -> None:
    """The signature of ``bad`` is still queued when the broken leaf column of ``bad + 9`` is read."""
    url = source.copy()
    conn = connect(url)
    drop_triggers(conn)
    bad = source.size - 20
    _forge_signed_byte(conn, bad)
    conn.execute(text("UPDATE log_records SET leaf_hash = :h WHERE seq = :s"), {"h": b"\x42" * 32, "s": bad + 9})
    conn.commit()
    for workers in WORKERS:
        found = _verify(source, url, workers)
        assert isinstance(found, IntegrityError) and found.seq == bad, (workers, found)
        assert "bad signature" in found.message


def test_a_later_bad_signature_loses_to_an_earlier_fault(source: Source,
                                                         connect: Callable[[str], Connection]) -> None:
    url = source.copy()
    conn = connect(url)
    drop_triggers(conn)
    _forge_signed_byte(conn, source.size - 5)
    conn.execute(text("UPDATE log_records SET leaf_hash = :h WHERE seq = 88"), {"h": b"\x42" * 32})
    conn.commit()
    for workers in WORKERS:
        found = _verify(source, url, workers)
        assert isinstance(found, IntegrityError) and found.seq == 88, (workers, found)


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_the_pool_reports_the_first_failure_in_submission_order(workers: int, batch: int) -> None:
    rng = random.Random(workers * 100 + batch)
    keys = [nacl.signing.SigningKey.generate() for _ in range(3)]
    bad = sorted(rng.sample(range(40, 300), 3))
    with SignaturePool(workers, batch=batch, depth=2) as pool:
        for tag in range(300):
            key = keys[tag % 3]
            message = b"partsledger/v1/entry\n" + rng.randbytes(rng.randrange(0, 900))
            signature = key.sign(message).signature
            if tag in bad:
                signature = bytes([signature[0] ^ 1]) + signature[1:]
            known = pool.add(tag, bytes(key.verify_key), message, signature)
            assert known is None or known == bad[0]
        assert pool.drain() == bad[0]


def test_the_pool_passes_good_signatures_and_refuses_malformed_keys() -> None:
    key = nacl.signing.SigningKey.generate()
    signed = key.sign(b"m")
    with SignaturePool(1, batch=2) as pool:
        pool.add(0, bytes(key.verify_key), b"m", signed.signature)
        pool.add(1, bytes(key.verify_key), b"m", signed.signature)
        assert pool.drain() is None
        pool.add(2, b"short", b"m", signed.signature)
        assert pool.drain() == 2
    assert verify_items([(bytes(key.verify_key), b"m", signed.signature)]) == -1
    assert verify_items([(bytes(key.verify_key), b"n", signed.signature)]) == 0


@pytest.mark.parametrize(("records", "cpus", "load", "expected"), [
    (PARALLEL_MIN_RECORDS - 1, 8, 0.0, 0), (PARALLEL_MIN_RECORDS, 1, 0.0, 0), (PARALLEL_MIN_RECORDS, 2, 0.2, 1),
    (10**6, 8, 0.5, 7), (10**6, 8, 5.5, 2), (10**6, 2, 1.2, 1), (10**6, 2, 1.3, 0), (10**6, 2, 4.0, 0),
])
def test_helpers_only_for_large_jobs_on_idle_cpus(monkeypatch: pytest.MonkeyPatch, records: int, cpus: int,
                                                  load: float, expected: int) -> None:
    from ledger import sigpool

    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(sigpool, "busy_cpus", lambda: load)
    assert default_workers(records) == expected


def test_busy_cpus_sees_work_running_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The busy CPUs are sampled now: a process spinning meanwhile counts, and the count stays within the
    machine's CPUs; without /proc/stat the load average answers."""
    import subprocess
    import sys

    from ledger import sigpool

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = sigpool.busy_cpus(0.3)
    finally:
        spinner.kill()
        spinner.wait()
    assert 0.5 <= busy <= (os.cpu_count() or 1)

    def no_proc() -> tuple[int, int]:
        raise OSError("no /proc")

    monkeypatch.setattr(sigpool, "_cpu_ticks", no_proc)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.75, 1.0, 1.0))
    assert sigpool.busy_cpus() == 1.75


def test_only_the_sqlite_writer_keeps_a_large_page_cache(tmp_path: os.PathLike[str]) -> None:
    """Appends keep the index pages of a batch's random keys cached; a whole-log read (verify, export) reads
    through the small default cache, so its memory does not grow with the log."""
    from ledger.storage.db import WRITER_CACHE_KIB

    db = Database(f"sqlite:///{tmp_path}/cache.sqlite3")
    try:
        with db.writer.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -WRITER_CACHE_KIB
        with db.reader.connect() as conn:
            reader_cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        assert reader_cache is not None and abs(int(reader_cache)) * (1024 if reader_cache < 0 else 4096) <= 4 << 20
    finally:
        db.dispose()
