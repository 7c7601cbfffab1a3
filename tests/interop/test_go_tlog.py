"""SPEC §3.5: our checkpoints and proofs verify with Go's sumdb/note and sumdb/tlog.

Builds ``tests/interop/tlogcheck`` offline in GOPATH mode against Debian's
``golang-golang-x-mod-dev`` (``/usr/share/gocode``) and feeds it checkpoints
signed by :mod:`ledger.checkpoint` and proofs from :class:`ledger.merkle.MemoryNodes`.
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.canonical import canonical_bytes
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.merkle import MemoryNodes, leaf_hash
from ledger.note import Signer

pytestmark = pytest.mark.slow

SOURCE = Path(__file__).parent / "tlogcheck"
GOPATH = Path("/usr/share/gocode")
ORIGIN = "partsledger.example/interop"
RECORDS = 50
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 49, 50]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class World:
    signer: Signer
    nodes: MemoryNodes
    leaves: list[bytes]


@pytest.fixture(scope="module")
def world() -> World:
    nodes = MemoryNodes()
    leaves = []
    for seq in range(RECORDS):
        record = canonical_bytes({"seq": seq, "entry": {"type": "part.commissioned", "serial": f"SN{seq:06d}"}})
        leaf = leaf_hash(record)
        nodes.append(leaf)
        leaves.append(leaf)
    return World(Signer.generate(ORIGIN), nodes, leaves)


def _checkpoint(world: World, size: int, signer: Signer | None = None) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, size, world.nodes.root(size)), signer or world.signer)


def _inclusion(world: World, index: int, size: int) -> dict[str, Any]:
    return {
        "leaf_hash": _b64(world.leaves[index]),
        "index": index,
        "tree_size": size,
        "proof": [_b64(h) for h in world.nodes.inclusion_proof(index, size)],
    }


def _consistency(world: World, old: int, new: int) -> dict[str, Any]:
    return {
        "old_size": old,
        "new_size": new,
        "old_root": _b64(world.nodes.root(old)),
        "new_root": _b64(world.nodes.root(new)),
        "proof": [_b64(h) for h in world.nodes.consistency_proof(old, new)],
    }


def _document(world: World) -> dict[str, Any]:
    return {
        "vkey": world.signer.verifier_key(),
        "origin": ORIGIN,
        "checkpoints": [_checkpoint(world, n) for n in SIZES],
        "inclusion": [_inclusion(world, i, n) for n in SIZES for i in range(n)],
        "consistency": [_consistency(world, m, n) for n in SIZES for m in SIZES if m <= n],
    }


def _run(binary: Path, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [str(binary)], input=json.dumps(document), capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, json.loads(done.stdout)


def _flip(b64: str, bit: int = 0) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[bit // 8] ^= 1 << (bit % 8)
    return _b64(bytes(raw))


def test_go_accepts_every_checkpoint_and_proof(tlogcheck: Path, world: World) -> None:
    document = _document(world)
    code, report = _run(tlogcheck, document)
    assert code == 0, report
    assert report["ok"] is True
    assert [c["size"] for c in report["checkpoints"]] == SIZES
    assert all(c["ok"] and c["origin"] == ORIGIN for c in report["checkpoints"])
    assert [c["root"] for c in report["checkpoints"]] == [_b64(world.nodes.root(n)) for n in SIZES]
    assert len(report["inclusion"]) == sum(SIZES) and all(r["ok"] for r in report["inclusion"])
    assert len(report["consistency"]) == len(document["consistency"]) and all(r["ok"] for r in report["consistency"])


@pytest.mark.parametrize("bit", [0, 131, 255])
def test_go_rejects_a_flipped_bit_in_an_inclusion_proof(tlogcheck: Path, world: World, bit: int) -> None:
    item = _inclusion(world, 21, 50)
    item["proof"][2] = _flip(item["proof"][2], bit)
    document = {"vkey": world.signer.verifier_key(), "checkpoints": [_checkpoint(world, 50)], "inclusion": [item]}
    code, report = _run(tlogcheck, document)
    assert code == 1
    assert report["checkpoints"][0]["ok"] is True
    assert report["inclusion"][0]["ok"] is False


def test_go_rejects_a_flipped_bit_in_a_consistency_proof(tlogcheck: Path, world: World) -> None:
    item = _consistency(world, 17, 50)
    item["proof"][-1] = _flip(item["proof"][-1], 77)
    code, report = _run(tlogcheck, {"vkey": world.signer.verifier_key(), "checkpoints": [], "consistency": [item]})
    assert code == 1
    assert report["consistency"][0]["ok"] is False


def test_go_rejects_a_flipped_bit_in_a_leaf_hash(tlogcheck: Path, world: World) -> None:
    item = _inclusion(world, 7, 33)
    item["leaf_hash"] = _flip(item["leaf_hash"], 200)
    document = {"vkey": world.signer.verifier_key(), "checkpoints": [_checkpoint(world, 33)], "inclusion": [item]}
    code, report = _run(tlogcheck, document)
    assert code == 1
    assert report["inclusion"][0]["ok"] is False


def test_go_rejects_a_proof_against_the_wrong_tree_size(tlogcheck: Path, world: World) -> None:
    item = _inclusion(world, 3, 32)
    item["tree_size"] = 33
    document = {"vkey": world.signer.verifier_key(), "checkpoints": [_checkpoint(world, 33)], "inclusion": [item]}
    code, report = _run(tlogcheck, document)
    assert code == 1
    assert report["inclusion"][0]["ok"] is False


@pytest.mark.parametrize("name", [ORIGIN, "someone-else.example/log"])
def test_go_rejects_a_checkpoint_signed_by_another_key(tlogcheck: Path, world: World, name: str) -> None:
    impostor = Signer.generate(name)
    document = {
        "vkey": world.signer.verifier_key(),
        "checkpoints": [
            _checkpoint(world, 50),
            sign_checkpoint(Checkpoint(ORIGIN, 50, world.nodes.root(50)), impostor),
        ],
    }
    code, report = _run(tlogcheck, document)
    assert code == 1
    assert [c["ok"] for c in report["checkpoints"]] == [True, False]
    assert "no verifiable signatures" in report["checkpoints"][1]["error"]


def test_go_rejects_a_tampered_checkpoint(tlogcheck: Path, world: World) -> None:
    signed = _checkpoint(world, 50).replace("\n50\n", "\n49\n", 1)
    code, report = _run(tlogcheck, {"vkey": world.signer.verifier_key(), "checkpoints": [signed]})
    assert code == 1
    assert "invalid signature" in report["checkpoints"][0]["error"]


def test_go_rejects_a_wrong_origin(tlogcheck: Path, world: World) -> None:
    document = {"vkey": world.signer.verifier_key(), "origin": "other.example", "checkpoints": [_checkpoint(world, 5)]}
    code, report = _run(tlogcheck, document)
    assert code == 1
    assert report["checkpoints"][0]["ok"] is False


def test_go_rejects_a_proof_in_reversed_order(tlogcheck: Path, world: World) -> None:
    # RFC 9162 order (leaf side first) is what Go expects too: the same hashes reversed do not verify.
    item = _inclusion(world, 21, 50)
    assert len(item["proof"]) >= 2
    item["proof"].reverse()
    document = {"vkey": world.signer.verifier_key(), "checkpoints": [_checkpoint(world, 50)], "inclusion": [item]}
    code, report = _run(tlogcheck, document)
    assert code == 1
    assert report["inclusion"][0]["ok"] is False
