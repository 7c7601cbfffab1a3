"""Crash evidence (issue 2): a writer killed with SIGKILL mid-append loses nothing it acknowledged.

A writer process (:mod:`tests.workers.crash_writer`) appends continuously and
prints each receipt only after ``append`` returned, i.e. after the commit.
The test SIGKILLs it at random moments — no cleanup, no rollback by Python,
the database sees a vanished client or an interrupted WAL write — and restarts
it, several rounds in a row; a last run appends a few more entries and exits
normally, showing the log takes appends after the crashes. Then:

* ``verify_database`` passes (chain, signatures, every Merkle node, every
  checkpoint root);
* there is no partial record: sequence numbers are contiguous, every level of
  the Merkle tree has exactly the nodes the size calls for (checked by verify),
  and the latest checkpoint covers every stored record;
* every entry whose receipt line was printed is present at the seq its receipt
  names, and the receipt's proof verifies against its checkpoint, which is
  consistent with the final one (the checker of :mod:`tests.workers.audit`);
* the projections (orgs, keys) equal a replay of the log from genesis, so no
  killed transaction left state behind without its record.

The random delays come from a seed printed on failure (``CRASH_SEED`` replays a run).
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ledger.replay import compare_replay
from ledger.service import LedgerSettings, open_ledger
from tests.workers.audit import audit_log

REPO = Path(__file__).resolve().parents[2]
ORIGIN = "test.partsledger/log"
KILLS = 5

pytestmark = pytest.mark.slow


def _writer(url: str, data_dir: Path, seed: int, count: int = 0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workers.crash_writer", "--db", url, "--data-dir", str(data_dir),
         "--origin", ORIGIN, "--seed", str(seed), "--count", str(count)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _wait_ready(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> bytes:
    """Read up to the ``ready`` line straight from the pipe; return what came after it (receipts already)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while b"ready\n" not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 65536) if ready else b""
        assert chunk, ("the writer did not start", seen, proc.communicate()[1])
        seen += chunk
    return seen.split(b"ready\n", 1)[1]


def _receipts(stdout: bytes) -> list[dict[str, Any]]:
    """Complete lines only: a line the kill cut short was never fully handed to the client."""
    lines = stdout.split(b"\n")[:-1]
    return [json.loads(line) for line in lines]


def test_sigkill_at_random_moments_loses_no_acknowledged_entry(tmp_path: Path, db_url: str) -> None:
    seed = int(os.environ.get("CRASH_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    acknowledged: list[dict[str, Any]] = []
    per_round = []
    for round_no in range(KILLS):
        proc = _writer(db_url, data_dir, seed + round_no)
        try:
            early = _wait_ready(proc)
            time.sleep(rng.uniform(0.3, 1.5))
            os.kill(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=60)
            stdout = early + stdout
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == -signal.SIGKILL, (seed, stderr)  # it was still appending when killed
        got = _receipts(stdout)
        per_round.append(len(got))  # may be 0 on a loaded machine: then the kill hit the first append
        acknowledged += got

    final = _writer(db_url, data_dir, seed + KILLS, count=20)
    stdout, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    acknowledged += _receipts(stdout.removeprefix(b"ready\n"))

    assert sum(per_round) > 0, f"seed {seed}: no round got as far as a receipt"
    ledger = open_ledger(LedgerSettings(data_dir=data_dir, db_url=db_url, origin=ORIGIN))
    try:
        audit = audit_log(ledger, acknowledged)
        assert audit.problems == [], f"seed {seed}"
        assert audit.receipts == len(acknowledged) and audit.lost == []
        assert audit.uncovered_tail == 0
        assert len({r["entry_id"] for r in acknowledged}) == len(acknowledged)
        # Each round started where the last committed append left off: the receipts' seqs rise across rounds.
        seqs = [r["seq"] for r in acknowledged]
        assert seqs == sorted(seqs)
        assert audit.records >= len(acknowledged) + 1  # genesis, plus at most one commit per kill never printed
        assert audit.records - 1 - len(acknowledged) <= KILLS * 8
        assert "org_keys" in compare_replay(ledger.db)
    finally:
        ledger.db.dispose()
    print(f"\n{KILLS} SIGKILLs on {ledger.db.dialect} (seed {seed}): receipts per round {per_round}, "
          f"{audit.records} records, {audit.records - 1 - len(acknowledged)} committed but never acknowledged")
