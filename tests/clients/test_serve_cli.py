"""``partsledger serve`` and ``demo`` with ``--log-key``: the log signing key lives where the operator says."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.checkpoint import verify_checkpoint
from ledger.entries import SignedEntry, make_signed_entry
from ledger.keys import KeyPair, b64encode, read_key_file
from ledger.note import Signer, parse_verifier_key
from tests.clients.running import cli, start_server


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_log_key_option_places_the_signing_key_and_the_server_signs_with_it(tmp_path: Path, db_url: str,
                                                                            command: str) -> None:
    key_file = tmp_path / "secrets" / "log-signing.key"  # a directory that does not exist yet
    server = start_server(tmp_path, db_url, command=command, extra=["--log-key", str(key_file)])
    try:
        assert key_file.is_file() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert not (server.data_dir / "log.key").exists()  # not the default place
        served = httpx.get(f"{server.url}/v1/log/key", timeout=10).json()
        expected = Signer(served["origin"], read_key_file(key_file).signing_key).verifier_key()
        assert served["verifier_key"] == expected
        note = httpx.get(f"{server.url}/v1/log/checkpoint", timeout=10).text
        verify_checkpoint(note, parse_verifier_key(expected), origin=served["origin"])
    finally:
        server.stop()
    # the same key file is used again on restart (never replaced)
    before = key_file.read_bytes()
    again = start_server(tmp_path, db_url, command=command, extra=["--log-key", str(key_file)])
    try:
        assert httpx.get(f"{again.url}/v1/log/key", timeout=10).json()["verifier_key"] == expected
    finally:
        again.stop()
    assert key_file.read_bytes() == before


def _worker_pids(parent: int) -> set[int]:
    """Processes whose parent is ``parent`` (the uvicorn worker processes), from /proc."""
    pids = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.add(int(stat_file.parent.name))
    return pids


def test_serve_with_two_workers_appends_from_both_into_one_chain(tmp_path: Path, db_url: str) -> None:
    server = start_server(tmp_path, db_url, extra=["--workers", "2"])
    try:
        assert len(_worker_pids(server.process.pid)) >= 2  # a spawn helper may be there too
        operator = read_key_file(server.operator_key)
        served = httpx.get(f"{server.url}/v1/log/key", timeout=10).json()
        entries = [make_signed_entry(operator, origin=served["origin"], type="key.add", org="partsledger-operator",
                                     body={"org_id": "partsledger-operator",
                                           "public_key": b64encode(KeyPair.generate().public_key)})
                   for _ in range(40)]

        def post(entry: SignedEntry) -> dict[str, Any]:
            response = httpx.post(f"{server.url}/v1/entries", json=entry.to_json(), timeout=60)
            assert response.status_code == 201, response.text
            return dict(response.json())

        with ThreadPoolExecutor(8) as pool:  # new connections each: spread over both workers
            receipts = list(pool.map(post, entries))
        assert sorted(r["seq"] for r in receipts) == list(range(1, 41))  # no gap, no duplicate, no fork
    finally:
        server.stop()
    result = cli("verify", "--db", db_url, "--data-dir", str(server.data_dir), "--json", home=tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["records"] == 41


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_the_server_and_its_helpers_without_a_traceback(tmp_path: Path, db_url: str,
                                                                    presses: int) -> None:
    """A terminal's Ctrl-C signals the whole process group: the server, its append process and its signature
    helpers. The server shuts down (closing its helpers' input), and every process of the group ends
    without printing a traceback; an entry accepted before is in the log. Pressed twice (uvicorn then stops
    at once, without the app's shutdown event), the same."""
    server = start_server(tmp_path, db_url, new_session=True)
    group = os.getpgid(server.process.pid)
    operator = read_key_file(server.operator_key)
    entry = make_signed_entry(operator, origin="audit.test/log", type="key.add", org="partsledger-operator",
                              body={"org_id": "partsledger-operator",
                                    "public_key": b64encode(KeyPair.generate().public_key)})
    try:
        response = httpx.post(f"{server.url}/v1/entries", json=entry.to_json(), timeout=30)
        assert response.status_code == 201, response.text
        helpers = _worker_pids(server.process.pid)
        assert len(helpers) >= 2  # the append process and the batch signature helper
        for press in range(presses):
            if press:
                time.sleep(0.05)
            os.killpg(group, signal.SIGINT)
        assert server.process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("processes of the server's group are still running after it stopped")
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log, log
    assert "KeyboardInterrupt" not in log and "CancelledError" not in log, log
    check = cli("verify", "--db", db_url, "--data-dir", str(server.data_dir), home=tmp_path / "home")
    assert check.returncode == 0, check.stdout + check.stderr
    assert response.json()["seq"] == 1
