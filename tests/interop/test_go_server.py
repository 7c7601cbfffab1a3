"""SPEC §3.5 against a running server: checkpoints and proofs served over HTTP by
``partsledger serve`` verify with Go's sumdb/note and sumdb/tlog."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.checkpoint import parse_checkpoint_body
from ledger.entries import make_signed_entry
from ledger.keys import KeyPair, b64encode, read_key_file

pytestmark = pytest.mark.slow

ORIGIN = "interop.partsledger/log"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from clients.cli import main; main()", "serve", "--data-dir", str(data_dir),
         "--port", str(port), "--origin", ORIGIN],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/v1/log/key", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {proc.stderr.read() if proc.stderr else ''!r}")
            time.sleep(0.2)
        yield base, data_dir
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def _run(binary: Path, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([str(binary)], input=json.dumps(document), capture_output=True, text=True, timeout=120,
                          check=False)
    return done.returncode, json.loads(done.stdout)


def test_served_checkpoints_and_proofs_verify_with_go(tlogcheck: Path, server: tuple[str, Path]) -> None:
    base, data_dir = server
    operator = read_key_file(data_dir / "operator.key")
    receipts: list[dict[str, Any]] = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for i in range(12):
            body = {"org_id": f"shop-{i:02d}", "kind": "workshop", "name": f"Shop {i}",
                    "public_keys": [b64encode(KeyPair.generate().public_key)]}
            signed = make_signed_entry(operator, origin=ORIGIN, type="org.register", org="partsledger-operator",
                                       body=body)
            response = client.post("/v1/entries", json=signed.to_json())
            assert response.status_code == 201, response.text
            receipts.append(response.json())
        vkey = client.get("/v1/log/key").json()["verifier_key"]
        latest = client.get("/v1/log/checkpoint").text
        size = parse_checkpoint_body(latest.split("\n\n", 1)[0] + "\n").size
        inclusion = [
            {"leaf_hash": r["leaf_hash"], "index": r["seq"], "tree_size": r["tree_size"], "proof": r["inclusion_proof"]}
            for r in receipts
        ]
        for seq in range(size):
            proof = client.get("/v1/log/proof/inclusion", params={"seq": seq, "size": size}).json()
            inclusion.append({"leaf_hash": proof["leaf_hash"], "index": seq, "tree_size": size,
                              "proof": proof["proof"]})
        checkpoints = [r["checkpoint"] for r in receipts] + [latest]
        roots = {parse_checkpoint_body(c.split("\n\n", 1)[0] + "\n").size:
                 parse_checkpoint_body(c.split("\n\n", 1)[0] + "\n").root for c in checkpoints}
        consistency = []
        for old in sorted(roots):
            proof = client.get("/v1/log/proof/consistency", params={"from": old, "to": size}).json()
            consistency.append({"old_size": old, "new_size": size,
                                "old_root": base64.b64encode(roots[old]).decode(),
                                "new_root": base64.b64encode(roots[size]).decode(), "proof": proof["proof"]})
    document = {"vkey": vkey, "origin": ORIGIN, "checkpoints": checkpoints, "inclusion": inclusion,
                "consistency": consistency}
    code, report = _run(tlogcheck, document)
    assert code == 0, report
    assert report["ok"] is True
    assert len(report["inclusion"]) == len(inclusion)
    assert all(item["ok"] for item in report["inclusion"])
    assert all(item["ok"] for item in report["consistency"])

    # Negative control: one flipped bit in one served proof is caught by Go.
    raw = bytearray(base64.b64decode(inclusion[-1]["proof"][0]))
    raw[0] ^= 1
    inclusion[-1]["proof"][0] = base64.b64encode(bytes(raw)).decode()
    code, report = _run(tlogcheck, document)
    assert code == 1
    assert report["ok"] is False
