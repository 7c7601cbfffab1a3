"""A lying server: every lie is refused with evidence, and the remembered checkpoint does not move.

The server is the real app; ``Server.rewrite`` corrupts one kind of answer per
test. "Evidence" means the two signed checkpoint notes themselves: the test
re-verifies both with the log's public key, as a third party would.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients.errors import LogForked, LogShrunk
from clients.sdk import PartsLedger
from ledger.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from ledger.errors import IntegrityError, ProofError
from ledger.keys import KeyPair, b64encode, read_key_file
from ledger.merkle import MemoryNodes, encode_proof
from ledger.note import Signer, parse_verifier_key
from tests.clients.conftest import Server

OPERATOR = "partsledger-operator"


def _flip(b64: str, bit: int = 0) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[bit // 8] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


def _json_rewrite(path: str, change: Callable[[Any], Any]) -> Callable[[httpx.Request, httpx.Response],
                                                                        httpx.Response]:
    def rewrite(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path != path or response.status_code >= 400:
            return response
        return httpx.Response(response.status_code, json=change(response.json()), request=request)

    return rewrite


def _text_rewrite(path: str, text: str) -> Callable[[httpx.Request, httpx.Response], httpx.Response]:
    def rewrite(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path != path:
            return response
        return httpx.Response(200, text=text, headers={"content-type": "text/plain"}, request=request)

    return rewrite


def _register(client: PartsLedger, server: Server, org_id: str) -> None:
    client.submit(server.operator, org=OPERATOR, type="org.register",
                  body={"org_id": org_id, "kind": "workshop", "name": org_id,
                        "public_keys": [b64encode(KeyPair.generate().public_key)]})


@pytest.fixture
def client(server: Server, tmp_path: Path) -> PartsLedger:
    """A client that has already seen (and remembered) the log at size 3."""
    client = PartsLedger("http://testserver", state_path=tmp_path / "state.json", transport=server.transport)
    _register(client, server, "shop-a")
    _register(client, server, "shop-b")
    assert client.checkpoint().size == 3
    return client


def _remembered(client: PartsLedger) -> str:
    held = client.remembered_checkpoint()
    assert held is not None
    return held.note


def _log_signer(server: Server, tmp_path: Path) -> Signer:
    return Signer(server.ledger.origin, read_key_file(tmp_path / "data-0" / "log.key").signing_key)


def _assert_evidence(server: Server, error: LogForked | LogShrunk, remembered: str) -> None:
    verifier = parse_verifier_key(server.ledger.verifier_key)
    first, second = error.evidence
    assert first == remembered
    a, b = verify_checkpoint(first, verifier), verify_checkpoint(second, verifier)  # both genuinely signed
    assert (a.size, a.root) != (b.size, b.root)
    assert error.details["remembered_checkpoint"] == first and error.details["offered_checkpoint"] == second


def test_flipped_bit_in_a_receipts_inclusion_proof(server: Server, client: PartsLedger) -> None:
    before = _remembered(client)
    server.rewrite = _json_rewrite("/v1/entries", lambda r: {**r, "inclusion_proof": [
        _flip(r["inclusion_proof"][0], 77), *r["inclusion_proof"][1:]]})
    with pytest.raises(ProofError, match="receipt for seq 3"):
        _register(client, server, "shop-c")
    assert _remembered(client) == before  # proofs are checked before any checkpoint is accepted


def test_flipped_bit_in_a_consistency_proof_is_a_fork_and_nothing_advances(server: Server,
                                                                           client: PartsLedger) -> None:
    before = _remembered(client)
    server.rewrite = _json_rewrite("/v1/log/proof/consistency", lambda r: {**r, "proof": [
        _flip(r["proof"][0], 5), *r["proof"][1:]]})
    with pytest.raises(LogForked) as caught:
        _register(client, server, "shop-c")
    _assert_evidence(server, caught.value, before)
    assert caught.value.code == "log_forked" and caught.value.details["consistency_proof"]
    assert _remembered(client) == before
    server.rewrite = None
    assert client.checkpoint().size == 4  # the honest server is accepted again, from the old checkpoint


def test_checkpoint_with_a_bad_signature(server: Server, client: PartsLedger) -> None:
    before = _remembered(client)
    _register(client, server, "shop-c")
    honest = server.ledger.latest_checkpoint()
    assert honest is not None
    body, _, sig_line = honest.note.rpartition("\n— ")
    name, sig = sig_line.rstrip("\n").split(" ")
    forged = f"{body}\n— {name} {_flip(sig, 8 * 10)}\n"
    after_honest = _remembered(client)
    server.rewrite = _text_rewrite("/v1/log/checkpoint", forged)
    with pytest.raises(ProofError) as caught:
        client.checkpoint()
    assert caught.value.code == "bad_checkpoint"
    assert _remembered(client) == after_honest != before


def test_a_checkpoint_signed_by_another_key(server: Server, client: PartsLedger) -> None:
    before = _remembered(client)
    impostor = Signer.generate(server.ledger.origin)
    fake = sign_checkpoint(Checkpoint(server.ledger.origin, 9, bytes(32)), impostor)
    server.rewrite = _text_rewrite("/v1/log/checkpoint", fake)
    with pytest.raises(ProofError):
        client.checkpoint()
    assert _remembered(client) == before


def test_forked_log_same_size_different_root(server: Server, client: PartsLedger, tmp_path: Path) -> None:
    before = _remembered(client)
    fork = sign_checkpoint(Checkpoint(server.ledger.origin, 3, bytes(range(32))), _log_signer(server, tmp_path))
    server.rewrite = _text_rewrite("/v1/log/checkpoint", fork)
    with pytest.raises(LogForked) as caught:
        client.checkpoint()
    _assert_evidence(server, caught.value, before)
    assert caught.value.offered == fork
    assert _remembered(client) == before


def test_forked_log_that_grew_on_another_branch(server: Server, client: PartsLedger, tmp_path: Path) -> None:
    before = _remembered(client)
    fork = sign_checkpoint(Checkpoint(server.ledger.origin, 5, bytes(range(32))), _log_signer(server, tmp_path))
    _register(client, server, "shop-c")
    _register(client, server, "shop-d")  # the honest log is at 5 too, with another root
    honest = _remembered(client)
    server.rewrite = _text_rewrite("/v1/log/checkpoint", fork)
    with pytest.raises(LogForked) as caught:
        client.checkpoint()
    _assert_evidence(server, caught.value, honest)
    assert _remembered(client) == honest != before


def test_split_view_receipt_on_a_forked_tree(server: Server, client: PartsLedger, tmp_path: Path) -> None:
    """The server hands out a receipt on a private branch: a tree that holds the new entry but rewrote seq 0."""
    before = _remembered(client)
    signer = _log_signer(server, tmp_path)

    def split_view(r: dict[str, Any]) -> dict[str, Any]:
        nodes = MemoryNodes()
        nodes.append(bytes(32))  # a rewritten genesis
        for seq in range(1, r["seq"]):
            nodes.append(server.ledger.record(seq).leaf_hash)
        nodes.append(base64.b64decode(r["leaf_hash"]))
        size = nodes.size
        note = sign_checkpoint(Checkpoint(server.ledger.origin, size, nodes.root()), signer)
        return {**r, "tree_size": size, "checkpoint": note,
                "inclusion_proof": encode_proof(nodes.inclusion_proof(r["seq"], size))}

    server.rewrite = _json_rewrite("/v1/entries", split_view)
    with pytest.raises(LogForked) as caught:
        _register(client, server, "shop-c")
    _assert_evidence(server, caught.value, before)
    assert _remembered(client) == before


def test_shrunk_log(server: Server, client: PartsLedger) -> None:
    before = _remembered(client)
    older = server.ledger.checkpoint_at(2).note  # genuine, signed, smaller
    server.rewrite = _text_rewrite("/v1/log/checkpoint", older)
    with pytest.raises(LogShrunk) as caught:
        client.checkpoint()
    assert caught.value.code == "log_shrunk"
    _assert_evidence(server, caught.value, before)
    assert _remembered(client) == before


def test_shrink_is_remembered_across_processes(server: Server, client: PartsLedger, tmp_path: Path) -> None:
    before = _remembered(client)
    older = server.ledger.checkpoint_at(2).note
    server.rewrite = _text_rewrite("/v1/log/checkpoint", older)
    fresh = PartsLedger("http://testserver", state_path=tmp_path / "state.json", transport=server.transport)
    with pytest.raises(LogShrunk):
        fresh.checkpoint()
    assert json.loads((tmp_path / "state.json").read_text())["logs"][server.ledger.origin]["checkpoint"] == before


def test_records_beyond_the_checkpoint(server: Server, client: PartsLedger) -> None:
    _register(client, server, "shop-c")
    cp = client.checkpoint()
    _register(client, server, "shop-d")  # the server now holds one record the old checkpoint does not cover

    def more(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path != "/v1/log/records":
            return response
        honest = server.client.get("/v1/log/records", params={"start": 0, "limit": 10}).json()
        return httpx.Response(200, json=honest, request=request)

    server.rewrite = more
    with pytest.raises(IntegrityError) as caught:
        client.records(0, 10, within=cp)
    assert "server sent 5" in caught.value.message
    server.rewrite = None
    with pytest.raises(ProofError, match="outside checkpoint"):
        client.prove_leaf(4, server.ledger.record(4).leaf_hash, cp)


def test_a_record_whose_bytes_do_not_match_its_leaf_hash(server: Server, client: PartsLedger) -> None:
    def swap(page: dict[str, Any]) -> dict[str, Any]:
        page["records"][1]["leaf_hash"] = page["records"][2]["leaf_hash"]
        return page

    server.rewrite = _json_rewrite("/v1/log/records", swap)
    with pytest.raises(IntegrityError) as caught:
        client.records(0, 3)
    assert caught.value.seq == 1


def test_a_decoded_copy_sent_unasked_must_match_the_bytes(server: Server, client: PartsLedger) -> None:
    """The client asks for the bytes alone; a server that adds ``record`` anyway is held to it."""
    honest = server.client.get("/v1/log/records", params={"start": 0, "limit": 3}).json()

    def with_copies(edit: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def change(page: dict[str, Any]) -> dict[str, Any]:
            assert all("record" not in item for item in page["records"])  # not asked for
            for item, full in zip(page["records"], honest["records"], strict=True):
                item["record"] = json.loads(json.dumps(full["record"]))
            if edit:
                page["records"][2]["record"]["logged"] = "2001-01-01T00:00:00Z"
            return page
        return change

    server.rewrite = _json_rewrite("/v1/log/records", with_copies(edit=False))
    assert [r.seq for r in client.records(0, 3)] == [0, 1, 2]
    server.rewrite = _json_rewrite("/v1/log/records", with_copies(edit=True))
    with pytest.raises(IntegrityError, match="record 2: decoded copy differs") as caught:
        client.records(0, 3)
    assert caught.value.seq == 2


def test_a_served_record_that_is_not_in_the_tree(server: Server, client: PartsLedger) -> None:
    def other(r: dict[str, Any]) -> dict[str, Any]:
        return server.client.get("/v1/log/records/2").json() | {"seq": r["seq"]}

    server.rewrite = _json_rewrite("/v1/log/records/1", other)
    with pytest.raises(IntegrityError, match="record 1: its bytes say seq 2"):
        client.record(1)
