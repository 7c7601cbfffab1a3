"""``partsledger serve`` and ``demo`` with ``--log-key``: the log signing key lives where the operator says."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from ledger.checkpoint import verify_checkpoint
from ledger.keys import read_key_file
from ledger.note import Signer, parse_verifier_key
from tests.clients.running import start_server


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
