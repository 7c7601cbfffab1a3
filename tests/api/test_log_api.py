"""The log's HTTP surface (SPEC §5.1), exercised through the ASGI app.

Every receipt, checkpoint and proof the server hands out is checked here with
the verifier-side functions only (``parse_verifier_key``, ``verify_checkpoint``,
``verify_inclusion``, ``verify_consistency``), starting from nothing but the
key served at ``/v1/log/key`` — as a third party would. Every bad input must be
a 4xx RFC 9457 problem with a stable ``code`` and leave the log untouched.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from api.schemas import RecordOut, RecordPage
from api.settings import ApiLimits
from ledger.checkpoint import Checkpoint, verify_checkpoint
from ledger.entries import SignedEntry, format_time, sign_entry, validate_entry
from ledger.errors import NotFound, ProofError
from ledger.keys import KeyPair, b64decode, b64encode
from ledger.log import Ledger
from ledger.merkle import decode_proof, verify_consistency, verify_inclusion
from ledger.note import Verifier, parse_verifier_key
from tests.api.conftest import ClientFactory
from tests.support import Actor, World

PROBLEM_JSON = "application/problem+json"


# --------------------------------------------------------------------------- helpers


def verifier_of(client: TestClient) -> Verifier:
    response = client.get("/v1/log/key")
    assert response.status_code == 200
    return parse_verifier_key(response.json()["verifier_key"])


def check_receipt(receipt: dict[str, Any], verifier: Verifier, origin: str) -> Checkpoint:
    """Verify a receipt as a client would: signed checkpoint, then the inclusion proof against its root."""
    cp = verify_checkpoint(receipt["checkpoint"], verifier, origin)
    assert cp.size == receipt["tree_size"]
    verify_inclusion(b64decode(receipt["leaf_hash"], size=32), receipt["seq"], cp.size,
                     decode_proof(receipt["inclusion_proof"]), cp.root)
    return cp


def assert_problem(response: Response, status: int, code: str, detail: str | None = None) -> dict[str, Any]:
    """A well-formed RFC 9457 problem with the given status and stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["code"] == code, problem
    assert problem["type"] == f"urn:partsledger:problem:{code}"
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
    if detail is not None:
        assert detail in problem["detail"], problem["detail"]
    return problem


def log_state(ledger: Ledger) -> tuple[int, int]:
    """(checkpointed size, number of stored records): both must stay put when input is rejected."""
    return ledger.size(), len(ledger.raw_records(0, 1_000_000))


@pytest.fixture
def shop(world: World) -> Actor:
    return world.register("shop-one", "workshop")


def key_add(world: World, actor: Actor, **kwargs: Any) -> SignedEntry:
    """A cheap entry that is valid any number of times: the org adds a fresh key of its own."""
    body = {"org_id": actor.org, "public_key": b64encode(KeyPair.generate().public_key)}
    return world.entry(actor, "key.add", body, **kwargs)


# --------------------------------------------------------------------------- appending


def test_post_entry_returns_a_receipt_that_verifies(client: TestClient, world: World, shop: Actor) -> None:
    before = world.ledger.size()
    signed = key_add(world, shop)
    response = client.post("/v1/entries", json=signed.to_json())
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["seq"] == before
    assert receipt["tree_size"] == before + 1
    assert receipt["entry_id"] == signed.entry_id
    assert receipt["duplicate"] is False
    cp = check_receipt(receipt, verifier_of(client), world.ledger.origin)
    assert cp.size == world.ledger.size() == before + 1
    # The served record is the one appended, byte for byte.
    record = client.get(f"/v1/log/records/{receipt['seq']}").json()
    assert record["leaf_hash"] == receipt["leaf_hash"]
    assert record["record"]["entry"] == signed.entry.data
    assert record["record"]["sig"] == b64encode(signed.signature)


def test_a_receipt_does_not_verify_under_another_key_or_with_a_flipped_proof(
        client: TestClient, world: World, shop: Actor) -> None:
    """Negative control for :func:`check_receipt`: it really checks the signature and the path."""
    receipt = client.post("/v1/entries", json=key_add(world, shop).to_json()).json()
    origin = world.ledger.origin
    stranger = Verifier.from_public_key(origin, KeyPair.generate().public_key)
    with pytest.raises(ProofError):
        check_receipt(receipt, stranger, origin)
    proof = decode_proof(receipt["inclusion_proof"])
    assert proof, "a tree of size > 1 has a non-empty inclusion proof"
    flipped = bytes([proof[0][0] ^ 1]) + proof[0][1:]
    with pytest.raises(ProofError):
        check_receipt({**receipt, "inclusion_proof": [b64encode(flipped), *receipt["inclusion_proof"][1:]]},
                      verifier_of(client), origin)


def test_the_same_entry_twice_returns_the_original_receipt(client: TestClient, world: World, shop: Actor) -> None:
    signed = key_add(world, shop)
    first = client.post("/v1/entries", json=signed.to_json())
    assert first.status_code == 201
    client.post("/v1/entries", json=key_add(world, shop).to_json())  # the log moves on
    size = world.ledger.size()
    again = client.post("/v1/entries", json=signed.to_json())
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "duplicate": True}
    assert world.ledger.size() == size
    check_receipt(again.json(), verifier_of(client), world.ledger.origin)


def test_batch_appends_under_one_checkpoint(client: TestClient, world: World, shop: Actor) -> None:
    before = world.ledger.size()
    batch = [key_add(world, shop) for _ in range(4)]
    response = client.post("/v1/entries/batch", json={"entries": [s.to_json() for s in batch]})
    assert response.status_code == 201, response.text
    receipts = response.json()["receipts"]
    assert [r["seq"] for r in receipts] == list(range(before, before + 4))
    assert [r["entry_id"] for r in receipts] == [s.entry_id for s in batch]
    assert {r["checkpoint"] for r in receipts} == {receipts[0]["checkpoint"]}
    verifier = verifier_of(client)
    for receipt in receipts:
        assert check_receipt(receipt, verifier, world.ledger.origin).size == before + 4
    assert world.ledger.size() == before + 4
    for intermediate in range(before + 1, before + 4):
        with pytest.raises(NotFound):
            world.ledger.checkpoint_at(intermediate)


def test_batch_receipts_equal_the_stored_receipts_given_for_duplicates(client: TestClient, world: World,
                                                                      shop: Actor) -> None:
    """Receipts of a batch are built in memory; the duplicate path reads them back from the database.
    Both must agree exactly, including for an entry repeated inside one batch."""
    first, second = key_add(world, shop), key_add(world, shop)
    response = client.post("/v1/entries/batch", json={"entries": [first.to_json(), second.to_json(),
                                                                   first.to_json()]})
    assert response.status_code == 201, response.text
    receipts = response.json()["receipts"]
    assert receipts[2] == {**receipts[0], "duplicate": True}
    size = world.ledger.size()
    assert size == receipts[0]["tree_size"] == receipts[1]["seq"] + 1
    client.post("/v1/entries", json=key_add(world, shop).to_json())  # the log moves on
    again = client.post("/v1/entries/batch", json={"entries": [second.to_json(), first.to_json()]})
    assert again.status_code == 201, again.text
    assert again.json()["receipts"] == [{**receipts[1], "duplicate": True}, {**receipts[0], "duplicate": True}]
    verifier = verifier_of(client)
    for receipt in receipts:
        check_receipt(receipt, verifier, world.ledger.origin)


def test_checkpoint_is_plain_text_and_verifies(client: TestClient, world: World, shop: Actor) -> None:
    response = client.get("/v1/log/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    cp = verify_checkpoint(response.text, verifier_of(client), world.ledger.origin)
    assert cp.size == world.ledger.size()
    assert cp.root == world.ledger.root_at(cp.size)
    key = client.get("/v1/log/key").json()
    assert key["origin"] == world.ledger.origin
    assert key["algorithm"] == "ed25519"


# --------------------------------------------------------------------------- reading


def test_records_page_through_the_exact_canonical_bytes(client: TestClient, world: World, shop: Actor) -> None:
    for _ in range(5):
        client.post("/v1/entries", json=key_add(world, shop).to_json())
    size = world.ledger.size()
    seen: list[dict[str, Any]] = []
    start: int | None = 0
    pages = 0
    while start is not None:
        page = client.get("/v1/log/records", params={"start": start, "limit": 3})
        assert page.status_code == 200
        body = page.json()
        assert 1 <= len(body["records"]) <= 3
        seen.extend(body["records"])
        start = body["next_start"]
        pages += 1
    assert pages == -(-size // 3)
    assert [r["seq"] for r in seen] == list(range(size))
    prev = b64encode(bytes(32))
    for item in seen:
        raw = base64.b64decode(item["canonical"], validate=True)
        assert b64encode(hashlib.sha256(b"\x00" + raw).digest()) == item["leaf_hash"]
        assert json.loads(raw) == item["record"]
        assert item["record"]["seq"] == item["seq"]
        assert item["record"]["prev"] == prev  # the hash chain, as served
        prev = item["leaf_hash"]
        single = client.get(f"/v1/log/records/{item['seq']}")
        assert single.status_code == 200
        assert single.json() == item
    beyond = client.get("/v1/log/records", params={"start": size})
    assert beyond.status_code == 200
    assert beyond.json() == {"records": [], "next_start": None}


_AWKWARD_NAME = 'Werkstatt M\u00fcnchen "Nord" \\ \u65e5\u672c\n\t\u2028\U0001f697'


def test_records_served_as_spliced_json_match_the_schema_and_the_stored_bytes(
        client: TestClient, world: World) -> None:
    """The records endpoints write the stored bytes into ``record`` as they are: escapes and non-ASCII
    text must decode to the same record, and the page must be exactly ``RecordPage``'s fields."""
    world.register("werk-muenchen", "workshop", name=_AWKWARD_NAME)
    size = world.ledger.size()
    page = client.get("/v1/log/records", params={"start": 0, "limit": size})
    assert page.status_code == 200
    assert page.headers["content-type"] == "application/json"
    body = page.json()
    assert set(body) == {"records", "next_start"} and body["next_start"] is None
    assert RecordPage.model_validate(body).model_dump() == body
    rows = world.ledger.raw_records(0, size)
    assert [r["seq"] for r in body["records"]] == [seq for seq, _, _ in rows]
    for item, (seq, raw, leaf) in zip(body["records"], rows, strict=True):
        assert set(item) == {"seq", "leaf_hash", "canonical", "record"}
        assert item == {"seq": seq, "leaf_hash": b64encode(leaf), "canonical": b64encode(raw),
                        "record": json.loads(raw)}
        single = client.get(f"/v1/log/records/{seq}")
        assert single.headers["content-type"] == "application/json"
        assert RecordOut.model_validate(single.json()).model_dump() == single.json() == item
    assert body["records"][-1]["record"]["entry"]["body"]["name"] == _AWKWARD_NAME


def test_records_page_without_the_decoded_copy_serves_the_same_bytes(client: TestClient, world: World,
                                                                     shop: Actor) -> None:
    """``decoded=false`` leaves out ``record`` and nothing else: the same seqs, leaf hashes and bytes."""
    for _ in range(3):
        client.post("/v1/entries", json=key_add(world, shop).to_json())
    size = world.ledger.size()
    full = client.get("/v1/log/records", params={"start": 1, "limit": size}).json()
    compact = client.get("/v1/log/records", params={"start": 1, "limit": size, "decoded": "false"})
    assert compact.status_code == 200 and compact.headers["content-type"] == "application/json"
    body = compact.json()
    assert all(record.record is None for record in RecordPage.model_validate(body).records)
    assert body["next_start"] == full["next_start"] is None and len(body["records"]) == size - 1
    for item, whole in zip(body["records"], full["records"], strict=True):
        assert set(item) == {"seq", "leaf_hash", "canonical"}
        assert item == {k: whole[k] for k in ("seq", "leaf_hash", "canonical")}
        assert json.loads(base64.b64decode(item["canonical"], validate=True)) == whole["record"]
    assert len(compact.content) < len(client.get("/v1/log/records", params={"start": 1, "limit": size}).content)
    bad = client.get("/v1/log/records", params={"decoded": "maybe"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


def test_proofs_verify_against_served_checkpoints(client: TestClient, world: World, shop: Actor) -> None:
    verifier = verifier_of(client)
    origin = world.ledger.origin
    checkpoints: list[Checkpoint] = []
    for _ in range(6):
        receipt = client.post("/v1/entries", json=key_add(world, shop).to_json()).json()
        checkpoints.append(check_receipt(receipt, verifier, origin))
    latest = verify_checkpoint(client.get("/v1/log/checkpoint").text, verifier, origin)
    for old in [*checkpoints, latest]:
        for seq in range(old.size):
            response = client.get("/v1/log/proof/inclusion", params={"seq": seq, "size": old.size})
            assert response.status_code == 200
            proof = response.json()
            assert proof["tree_size"] == old.size
            verify_inclusion(b64decode(proof["leaf_hash"], size=32), seq, old.size, decode_proof(proof["proof"]),
                             old.root)
        response = client.get("/v1/log/proof/consistency", params={"from": old.size, "to": latest.size})
        assert response.status_code == 200
        body = response.json()
        assert (body["from"], body["to"]) == (old.size, latest.size)
        verify_consistency(old.size, latest.size, old.root, latest.root, decode_proof(body["proof"]))
    # Without ``size``/``to`` the proofs are against the latest tree.
    default = client.get("/v1/log/proof/inclusion", params={"seq": 0}).json()
    assert default["tree_size"] == latest.size
    verify_inclusion(b64decode(default["leaf_hash"], size=32), 0, latest.size, decode_proof(default["proof"]),
                     latest.root)
    first = checkpoints[0]
    body = client.get("/v1/log/proof/consistency", params={"from": first.size}).json()
    assert body["to"] == latest.size
    verify_consistency(first.size, latest.size, first.root, latest.root, decode_proof(body["proof"]))
    # A consistency proof against a different root must not verify (the check is not blind).
    with pytest.raises(ProofError):
        verify_consistency(first.size, latest.size, checkpoints[1].root, latest.root, decode_proof(body["proof"]))


# --------------------------------------------------------------------------- bad single entries

BodyMaker = Callable[[World, Actor], bytes]


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def _signed(world: World, actor: Actor, **kwargs: Any) -> dict[str, Any]:
    return key_add(world, actor, **kwargs).to_json()


def _with_entry(world: World, actor: Actor, **changes: Any) -> bytes:
    data = _signed(world, actor)
    data["entry"] = {**data["entry"], **changes}
    return _json(data)


def _without_entry_field(world: World, actor: Actor, name: str) -> bytes:
    data = _signed(world, actor)
    del data["entry"][name]
    return _json(data)


def _float_in_body(world: World, actor: Actor) -> bytes:
    data = _signed(world, actor)
    data["entry"]["body"]["weight"] = 1.5
    return _json(data)


def _duplicate_key(world: World, actor: Actor) -> bytes:
    text = json.dumps(_signed(world, actor))
    assert text.endswith("}")
    return (text[:-1] + ', "sig": "AAAA"}').encode()


def _signed_by_unknown_key(world: World, actor: Actor) -> bytes:
    stranger = Actor(actor.org, KeyPair.generate())
    return _json(_signed(world, stranger))


def _signed_over_other_bytes(world: World, actor: Actor) -> bytes:
    data = _signed(world, actor)
    data["entry"]["body"]["public_key"] = b64encode(KeyPair.generate().public_key)
    return _json(data)


def _signed_by_other_registered_org(world: World, actor: Actor) -> bytes:
    other = world.actors.get("shop-two") or world.register("shop-two", "workshop")
    data = _signed(world, actor)
    data["sig"] = b64encode(other.key.sign("entry", key_add(world, actor).entry.canonical))
    return _json(data)


def _for_other_origin(world: World, actor: Actor) -> bytes:
    entry = world.entry(actor, "key.add", {"org_id": actor.org, "public_key": b64encode(bytes(32))})
    data = {**entry.entry.data, "origin": "elsewhere.example/log"}
    return _json(sign_entry(validate_entry(data), actor.key).to_json())


def _unknown_event_type(world: World, actor: Actor) -> bytes:
    return _json(world.entry(actor, "part.teleport", {"where": "moon"}).to_json())


def _at(delta: timedelta) -> str:
    return format_time(datetime.now(UTC) + delta)


BAD_ENTRIES: list[Any] = [
    pytest.param(lambda w, a: b'{"entry": {', 400, "invalid_json", "malformed JSON", id="malformed-json"),
    pytest.param(_duplicate_key, 400, "invalid_json", "duplicate JSON key 'sig'", id="duplicate-key"),
    pytest.param(_float_in_body, 422, "invalid_field", "floats are not allowed", id="float"),
    pytest.param(lambda w, a: b"", 400, "invalid_json", "empty", id="empty-body"),
    pytest.param(lambda w, a: b'{"entry": "\xff"}', 400, "invalid_json", "UTF-8", id="not-utf8"),
    pytest.param(lambda w, a: b"[1, 2]", 422, "invalid_entry", "JSON object", id="array"),
    pytest.param(lambda w, a: _json({**_signed(w, a), "entry": "key.add"}), 422, "invalid_entry",
                 "entry: expected a JSON object", id="entry-not-object"),
    pytest.param(lambda w, a: _json({**_signed(w, a), "sig": "not base64!"}), 422, "invalid_field",
                 "sig: not valid base64", id="sig-not-base64"),
    pytest.param(lambda w, a: _json({**_signed(w, a), "sig": b64encode(bytes(63))}), 422, "invalid_field",
                 "sig: expected 64 bytes, got 63", id="sig-wrong-length"),
    pytest.param(lambda w, a: _json({**_signed(w, a), "sig": 12}), 422, "invalid_field",
                 "sig: expected a base64 string", id="sig-not-string"),
    pytest.param(lambda w, a: _json({"entry": _signed(w, a)["entry"]}), 422, "invalid_entry",
                 "exactly the fields 'entry' and 'sig'", id="missing-sig"),
    pytest.param(lambda w, a: _json({**_signed(w, a), "note": "hi"}), 422, "invalid_entry",
                 "exactly the fields 'entry' and 'sig'", id="extra-envelope-field"),
    pytest.param(lambda w, a: _without_entry_field(w, a, "nonce"), 422, "invalid_entry",
                 "missing field(s) nonce", id="entry-missing-field"),
    pytest.param(lambda w, a: _with_entry(w, a, extra=1), 422, "invalid_entry", "unknown field(s) extra",
                 id="entry-extra-field"),
    pytest.param(lambda w, a: _with_entry(w, a, v=2), 422, "unsupported_version", "format version 1",
                 id="entry-version"),
    pytest.param(lambda w, a: _with_entry(w, a, org=7), 422, "invalid_entry", "entry.org", id="entry-org-type"),
    pytest.param(lambda w, a: _with_entry(w, a, time="yesterday"), 422, "invalid_time", "RFC 3339",
                 id="entry-time-format"),
    pytest.param(lambda w, a: _with_entry(w, a, body=[]), 422, "invalid_body", "entry.body", id="body-not-object"),
    pytest.param(lambda w, a: _with_entry(w, a, body={"n": 2**60}), 422, "invalid_field", "outside",
                 id="unsafe-integer"),
    pytest.param(_signed_by_unknown_key, 403, "unknown_key", "not a registered key of org shop-one",
                 id="unknown-key"),
    pytest.param(lambda w, a: _json(_signed(w, Actor("nobody-here", a.key))), 403, "unknown_org",
                 "org nobody-here is not registered", id="unknown-org"),
    pytest.param(_signed_over_other_bytes, 403, "bad_signature", "does not verify", id="sig-over-other-bytes"),
    pytest.param(_signed_by_other_registered_org, 403, "bad_signature", "does not verify", id="sig-by-other-org"),
    pytest.param(_for_other_origin, 422, "wrong_origin", "elsewhere.example/log", id="wrong-origin"),
    pytest.param(_unknown_event_type, 422, "invalid_entry", "unknown event type 'part.teleport'",
                 id="unknown-event-type"),
    pytest.param(lambda w, a: _json(_signed(w, a, time=_at(timedelta(hours=2)))), 403, "clock_skew",
                 "ahead of the log's clock", id="time-in-future"),
    pytest.param(lambda w, a: _json(_signed(w, a, time=_at(-timedelta(days=90)))), 403, "clock_skew",
                 "behind the log's clock", id="time-long-past"),
]


@pytest.mark.parametrize(("make", "status", "code", "detail"), BAD_ENTRIES)
def test_bad_entry_is_a_problem_and_appends_nothing(client: TestClient, world: World, shop: Actor,
                                                     make: BodyMaker, status: int, code: str, detail: str) -> None:
    body = make(world, shop)
    before = log_state(world.ledger)
    response = client.post("/v1/entries", content=body, headers={"content-type": "application/json"})
    assert_problem(response, status, code, detail)
    assert log_state(world.ledger) == before


def test_non_json_content_type_is_refused(client: TestClient, world: World, shop: Actor) -> None:
    before = log_state(world.ledger)
    response = client.post("/v1/entries", content=_json(_signed(world, shop)), headers={"content-type": "text/plain"})
    assert_problem(response, 400, "invalid_json", "'text/plain' is not JSON")
    assert log_state(world.ledger) == before


def test_oversized_body_is_413_with_or_without_content_length(api_factory: ClientFactory, world: World,
                                                              shop: Actor) -> None:
    client = api_factory(limits=ApiLimits(max_body_bytes=1024))
    small = _json(_signed(world, shop))
    assert len(small) < 1024
    assert client.post("/v1/entries", content=small, headers={"content-type": "application/json"}).status_code == 201
    data = _signed(world, shop)
    data["entry"]["body"]["padding"] = "x" * 2000
    big = _json(data)
    before = log_state(world.ledger)
    declared = client.post("/v1/entries", content=big, headers={"content-type": "application/json"})
    assert_problem(declared, 413, "body_too_large", "limit of 1024 bytes")

    def chunks() -> Iterator[bytes]:  # streamed: no Content-Length, the limit is enforced while reading
        for start in range(0, len(big), 256):
            yield big[start:start + 256]

    streamed = client.post("/v1/entries", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert_problem(streamed, 413, "body_too_large", "limit of 1024 bytes")
    assert log_state(world.ledger) == before


# --------------------------------------------------------------------------- bad batches


def test_oversized_batch_is_413(api_factory: ClientFactory, world: World, shop: Actor) -> None:
    client = api_factory(limits=ApiLimits(max_batch=3))
    before = log_state(world.ledger)
    response = client.post("/v1/entries/batch", json={"entries": [_signed(world, shop) for _ in range(4)]})
    assert_problem(response, 413, "batch_too_large", "at most 3 entries, got 4")
    assert log_state(world.ledger) == before
    ok = client.post("/v1/entries/batch", json={"entries": [_signed(world, shop) for _ in range(3)]})
    assert ok.status_code == 201


@pytest.mark.parametrize(("payload", "detail"), [
    pytest.param({"entries": []}, "at least one entry", id="empty"),
    pytest.param({"entries": {}}, '{"entries": [signed entry, ...]}', id="entries-not-list"),
    pytest.param([], '{"entries": [signed entry, ...]}', id="array"),
    pytest.param({"entries": [], "more": 1}, '{"entries": [signed entry, ...]}', id="extra-field"),
])
def test_malformed_batch_is_422(client: TestClient, world: World, payload: Any, detail: str) -> None:
    before = log_state(world.ledger)
    assert_problem(client.post("/v1/entries/batch", json=payload), 422, "invalid_entry", detail)
    assert log_state(world.ledger) == before


@pytest.mark.parametrize(("spoil", "status", "code"), [
    pytest.param(lambda d: {**d, "sig": b64encode(bytes(64))}, 403, "bad_signature", id="bad-signature"),
    pytest.param(lambda d: {**d, "sig": "short"}, 422, "invalid_field", id="unparseable"),
    pytest.param(lambda d: {**d, "entry": {**d["entry"], "origin": "elsewhere.example/log"}}, 422, "wrong_origin",
                 id="wrong-origin"),
])
def test_batch_with_one_bad_entry_appends_nothing(client: TestClient, world: World, shop: Actor,
                                                  spoil: Callable[[dict[str, Any]], dict[str, Any]], status: int,
                                                  code: str) -> None:
    entries = [_signed(world, shop) for _ in range(3)]
    entries[1] = spoil(entries[1])
    before = log_state(world.ledger)
    problem = assert_problem(client.post("/v1/entries/batch", json={"entries": entries}), status, code, "entry 1:")
    assert log_state(world.ledger) == before
    results = problem["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert results[0] == {"index": 0, "status": "not_appended"}
    assert results[2] == {"index": 2, "status": "not_appended"}
    assert results[1]["status"] == "rejected"
    assert results[1]["code"] == code
    assert results[1]["detail"]
    # The same entries without the bad one go in: nothing of the failed batch was half-stored.
    ok = client.post("/v1/entries/batch", json={"entries": [entries[0], entries[2]]})
    assert ok.status_code == 201, ok.text
    assert [r["duplicate"] for r in ok.json()["receipts"]] == [False, False]


def test_batch_entries_see_earlier_entries_of_the_same_batch(client: TestClient, world: World) -> None:
    """A batch may register an org and then act as it: state flows in order inside the transaction."""
    newcomer = Actor("shop-new", KeyPair.generate())
    register = world.entry(world.operator, "org.register", {
        "org_id": newcomer.org, "kind": "workshop", "name": "New", "public_keys": [b64encode(newcomer.key.public_key)]})
    response = client.post("/v1/entries/batch",
                           json={"entries": [register.to_json(), _signed(world, newcomer)]})
    assert response.status_code == 201, response.text
    # In the other order the second entry's org is unknown and nothing is stored.
    later = Actor("shop-later", KeyPair.generate())
    register_later = world.entry(world.operator, "org.register", {
        "org_id": later.org, "kind": "workshop", "name": "Later", "public_keys": [b64encode(later.key.public_key)]})
    before = log_state(world.ledger)
    problem = assert_problem(
        client.post("/v1/entries/batch", json={"entries": [_signed(world, later), register_later.to_json()]}),
        403, "unknown_org", "entry 0:")
    assert problem["results"][0]["status"] == "rejected"
    assert log_state(world.ledger) == before


# --------------------------------------------------------------------------- bad reads


@pytest.mark.parametrize(("path", "params", "status", "code", "detail"), [
    pytest.param("/v1/log/proof/inclusion", {"seq": 99}, 422, "invalid_field", "seq must be in", id="seq-beyond"),
    pytest.param("/v1/log/proof/inclusion", {"seq": -1}, 422, "invalid_field", "seq", id="seq-negative"),
    pytest.param("/v1/log/proof/inclusion", {"seq": "one"}, 422, "invalid_field", "valid integer",
                 id="seq-not-int"),
    pytest.param("/v1/log/proof/inclusion", {"seq": 2**70}, 422, "invalid_field", "seq", id="seq-huge"),
    pytest.param("/v1/log/proof/inclusion", {}, 422, "invalid_field", "seq", id="seq-missing"),
    pytest.param("/v1/log/proof/inclusion", {"seq": 0, "size": 99}, 422, "invalid_field", "beyond the current",
                 id="size-beyond"),
    pytest.param("/v1/log/proof/inclusion", {"seq": 0, "size": 0}, 422, "invalid_field", "size", id="size-zero"),
    pytest.param("/v1/log/proof/inclusion", {"seq": 1, "size": 1}, 422, "invalid_field", "seq must be in",
                 id="seq-not-below-size"),
    pytest.param("/v1/log/proof/consistency", {"from": 2, "to": 1}, 422, "invalid_field", "from=2",
                 id="from-above-to"),
    pytest.param("/v1/log/proof/consistency", {"from": 0, "to": 99}, 422, "invalid_field", "to=99",
                 id="to-beyond"),
    pytest.param("/v1/log/proof/consistency", {"from": 99}, 422, "invalid_field", "from=99", id="from-beyond"),
    pytest.param("/v1/log/proof/consistency", {"from": -1}, 422, "invalid_field", "from", id="from-negative"),
    pytest.param("/v1/log/records", {"limit": 0}, 422, "invalid_field", "limit", id="limit-zero"),
    pytest.param("/v1/log/records", {"start": -5}, 422, "invalid_field", "start", id="start-negative"),
    pytest.param("/v1/log/records", {"limit": 1001}, 400, "page_too_large", "page size limit of 1000",
                 id="page-too-large"),
    pytest.param("/v1/log/records/99", {}, 404, "not_found", "no record with seq 99", id="record-beyond"),
    pytest.param("/v1/log/records/-1", {}, 404, "not_found", "no record with seq -1", id="record-negative"),
    pytest.param("/v1/log/records/x", {}, 422, "invalid_field", "seq", id="record-not-int"),
    pytest.param("/v1/nothing-here", {}, 404, "not_found", None, id="unknown-route"),
    pytest.param("/", {}, 404, "not_found", None, id="root"),
])
def test_bad_reads_are_4xx_problems(client: TestClient, world: World, shop: Actor, path: str,
                                    params: dict[str, Any], status: int, code: str, detail: str | None) -> None:
    assert world.ledger.size() == 2  # genesis and shop-one: the out-of-range numbers above are out of range
    assert_problem(client.get(path, params=params), status, code, detail)


def test_page_limit_follows_the_configured_maximum(api_factory: ClientFactory, world: World, shop: Actor) -> None:
    client = api_factory(limits=ApiLimits(max_page=2))
    assert_problem(client.get("/v1/log/records", params={"limit": 3}), 400, "page_too_large", "limit=3")
    page = client.get("/v1/log/records", params={"limit": 2})
    assert page.status_code == 200
    assert len(page.json()["records"]) == 2


def test_wrong_method_is_a_problem(client: TestClient) -> None:
    assert_problem(client.delete("/v1/entries"), 405, "method_not_allowed")


# --------------------------------------------------------------------------- the API description


def test_openapi_lists_every_route_in_openapi_3_1(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    expected = {
        "/v1/entries": "post",
        "/v1/entries/batch": "post",
        "/v1/log/checkpoint": "get",
        "/v1/log/key": "get",
        "/v1/log/records": "get",
        "/v1/log/records/{seq}": "get",
        "/v1/log/proof/inclusion": "get",
        "/v1/log/proof/consistency": "get",
    }
    for path, method in expected.items():
        assert method in document["paths"].get(path, {}), f"{method.upper()} {path} missing from OpenAPI"
    schemas = document["components"]["schemas"]
    assert {"EntryIn", "BatchIn", "Problem", "ReceiptOut"} <= schemas.keys()
    post = document["paths"]["/v1/entries"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/EntryIn"}
    assert PROBLEM_JSON in post["responses"]["422"]["content"]
