"""The log: receipts, duplicates, batches, and what is rejected (nothing appended)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from ledger import merkle
from ledger.checkpoint import verify_checkpoint
from ledger.entries import build_entry, format_time, make_signed_entry, sign_entry
from ledger.errors import InvalidInput, PolicyRejected, SignatureError
from ledger.keys import KeyPair, b64encode
from ledger.log import BatchRejected, Ledger, Receipt
from ledger.note import parse_verifier_key
from tests.support import World


def check_receipt(ledger: Ledger, receipt: Receipt) -> None:
    cp = verify_checkpoint(receipt.checkpoint, parse_verifier_key(ledger.verifier_key), origin=ledger.origin)
    assert cp.size == receipt.tree_size
    merkle.verify_inclusion(receipt.leaf_hash, receipt.seq, cp.size, receipt.inclusion_proof, cp.root)


def test_genesis_registers_operator(ledger: Ledger) -> None:
    assert ledger.size() == 1
    record = ledger.record(0)
    assert record.entry.type == "log.genesis"
    assert record.prev == bytes(32)


def test_every_receipt_verifies_against_its_checkpoint(world: World) -> None:
    receipts = [world.register(f"workshop-{i:02d}", "workshop") for i in range(3)]
    assert len(receipts) == 3
    key = KeyPair.generate()
    receipt = world.append(world.actors["workshop-00"], "key.add",
                           {"org_id": "workshop-00", "public_key": b64encode(key.public_key)})
    assert receipt.seq == 4 and receipt.tree_size == 5 and not receipt.duplicate
    check_receipt(world.ledger, receipt)
    record = world.ledger.record(4)
    assert record.prev == world.ledger.record(3).leaf_hash


def test_same_entry_twice_returns_the_same_receipt_and_appends_nothing(world: World) -> None:
    actor = world.register("oem-one", "oem")
    signed = world.entry(actor, "key.revoke", {"kid": actor.key.kid})
    first = world.ledger.append(signed)
    world.register("oem-two", "oem")
    size = world.ledger.size()
    again = world.ledger.append(signed)
    assert world.ledger.size() == size
    assert again.duplicate
    assert (again.seq, again.checkpoint, again.inclusion_proof) == (first.seq, first.checkpoint, first.inclusion_proof)
    check_receipt(world.ledger, again)


def test_batch_is_one_transaction_with_one_checkpoint(world: World) -> None:
    keys = [KeyPair.generate() for _ in range(5)]
    import base64

    entries = [
        world.entry(world.operator, "org.register", {"org_id": f"shop-{i}", "kind": "workshop", "name": f"Shop {i}",
                                                     "public_keys": [base64.b64encode(k.public_key).decode()]})
        for i, k in enumerate(keys)
    ]
    receipts = world.ledger.append_batch(entries)
    assert [r.seq for r in receipts] == [1, 2, 3, 4, 5]
    assert {r.tree_size for r in receipts} == {6}
    for receipt in receipts:
        check_receipt(world.ledger, receipt)


def test_batch_with_one_bad_entry_appends_nothing(world: World) -> None:
    import base64

    good = world.entry(world.operator, "org.register", {
        "org_id": "shop-a", "kind": "workshop", "name": "A",
        "public_keys": [base64.b64encode(KeyPair.generate().public_key).decode()]})
    bad = world.entry(world.operator, "org.register", {"org_id": "shop-b", "kind": "spaceship", "name": "B",
                                                        "public_keys": []})
    with pytest.raises(BatchRejected) as info:
        world.ledger.append_batch([good, bad])
    assert info.value.index == 1
    assert world.ledger.size() == 1


@pytest.mark.parametrize("case", ["wrong_origin", "unknown_key", "bad_signature", "future", "revoked"])
def test_rejected_entries_append_nothing(world: World, case: str) -> None:
    actor = world.register("oem-x", "oem")
    size = world.ledger.size()
    body = {"kid": actor.key.kid}
    if case == "wrong_origin":
        signed = make_signed_entry(actor.key, origin="another.log/x", type="key.revoke", org=actor.org, body=body)
        expected: type[Exception] = InvalidInput
    elif case == "unknown_key":
        signed = make_signed_entry(KeyPair.generate(), origin=world.ledger.origin, type="key.revoke", org=actor.org,
                                   body=body)
        expected = SignatureError
    elif case == "bad_signature":
        entry = build_entry(origin=world.ledger.origin, type="key.revoke", org=actor.org, kid=actor.key.kid, body=body)
        other = build_entry(origin=world.ledger.origin, type="key.revoke", org=actor.org, kid=actor.key.kid,
                            body={"kid": "0" * 32})
        signed = sign_entry(entry, actor.key)
        signed = type(signed)(entry=other, signature=signed.signature)  # signature over different bytes
        expected = SignatureError
    elif case == "future":
        later = format_time(datetime.now(UTC) + timedelta(hours=2))
        signed = world.entry(actor, "key.revoke", body, time=later)
        expected = PolicyRejected
    else:
        world.append(actor, "key.revoke", body)
        size = world.ledger.size()
        signed = world.entry(actor, "key.add", {"org_id": actor.org, "public_key": "A" * 43 + "="})
        expected = SignatureError
    with pytest.raises(expected):
        world.ledger.append(signed)
    assert world.ledger.size() == size


def test_only_the_operator_registers_orgs(world: World) -> None:
    import base64

    oem = world.register("oem-y", "oem")
    with pytest.raises(PolicyRejected):
        world.append(oem, "org.register", {"org_id": "fake-shop", "kind": "workshop", "name": "Fake",
                                           "public_keys": [base64.b64encode(KeyPair.generate().public_key).decode()]})


def test_proofs_between_any_sizes(world: World, ledger_factory: Callable[..., Ledger]) -> None:
    del ledger_factory
    for i in range(9):
        world.register(f"org-{i:02d}", "supplier")
    ledger = world.ledger
    size = ledger.size()
    vkey = parse_verifier_key(ledger.verifier_key)
    latest = ledger.latest_checkpoint()
    assert latest is not None
    cp = verify_checkpoint(latest.note, vkey)
    for old in range(0, size + 1):
        _, _, proof = ledger.consistency_proof(old, size)
        old_root = ledger.root_at(old)
        merkle.verify_consistency(old, size, old_root, cp.root, proof)
    for seq in range(size):
        tree_size, leaf, proof = ledger.inclusion_proof(seq)
        merkle.verify_inclusion(leaf, seq, tree_size, proof, cp.root)
    with pytest.raises(InvalidInput):
        ledger.inclusion_proof(size + 3)
    with pytest.raises(InvalidInput):
        ledger.consistency_proof(size + 1)
