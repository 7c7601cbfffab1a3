"""Group commit (ledger/group_commit.py): concurrent appends share a transaction, never a fate.

Group formation is made deterministic with a gate: the first caller's batch is
held open until the others have queued behind it, so the second batch is
exactly "everyone who queued meanwhile". The batches themselves run against
the real database (SQLite, or PostgreSQL with PARTSLEDGER_TEST_DB).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from ledger.checkpoint import verify_checkpoint
from ledger.entries import SignedEntry
from ledger.errors import InvalidInput, LedgerError, SignatureError
from ledger.group_commit import GroupCommitter, Rejected
from ledger.keys import KeyPair, b64encode
from ledger.log import Ledger, Receipt, rejected_entry
from ledger.merkle import verify_inclusion
from ledger.note import parse_verifier_key
from ledger.verify import verify_database
from tests.support import Actor, World

WAIT = 20.0


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the queue to fill")
        time.sleep(0.001)


class Gate:
    """Wraps a batch function; the first call waits until ``others`` callers are queued."""

    def __init__(self, batch: Callable[[Sequence[Any]], list[Any]], others: int) -> None:
        self.batch = batch
        self.others = others
        self.calls: list[list[Any]] = []
        self.committer: GroupCommitter[Any, Any] | None = None

    def __call__(self, items: Sequence[Any]) -> list[Any]:
        if not self.calls:
            committer = self.committer
            assert committer is not None
            _until(lambda: committer.pending >= self.others)
        self.calls.append(list(items))
        return self.batch(items)


def run_gated(gate: Gate, committer: GroupCommitter[Any, Any], first: Any, others: list[Any]) -> list[Future[Any]]:
    """Submit ``first``, then (while its batch is held) all ``others``; return every future in order."""
    gate.committer = committer
    pool = ThreadPoolExecutor(max_workers=len(others) + 1)
    try:
        futures = [pool.submit(committer.submit, first)]
        _until(lambda: committer.pending == 0)  # the first caller took its own group and is inside the gate
        futures += [pool.submit(committer.submit, item) for item in others]
        for future in futures:
            future.exception(timeout=WAIT)  # every caller returns (no lost wake-ups)
    finally:
        pool.shutdown(wait=True)
    return futures


def key_add(world: World, actor: Actor) -> SignedEntry:
    return world.entry(actor, "key.add", {"org_id": actor.org, "public_key": b64encode(KeyPair.generate().public_key)})


def check(receipt: Receipt, ledger: Ledger) -> None:
    cp = verify_checkpoint(receipt.checkpoint, parse_verifier_key(ledger.verifier_key), ledger.origin)
    assert cp.size == receipt.tree_size > receipt.seq
    verify_inclusion(receipt.leaf_hash, receipt.seq, cp.size, receipt.inclusion_proof, cp.root)


def test_callers_queued_behind_a_commit_share_the_next_one(world: World) -> None:
    ledger = world.ledger
    shop = world.register("shop-one", "workshop")
    before = ledger.size()
    entries = [key_add(world, shop) for _ in range(8)]
    gate = Gate(ledger.append_batch, others=7)
    committer: GroupCommitter[SignedEntry, Receipt] = GroupCommitter(gate, rejected_entry)
    futures = run_gated(gate, committer, entries[0], entries[1:])
    assert [len(call) for call in gate.calls] == [1, 7]
    assert committer.groups == 2
    receipts = [f.result() for f in futures]
    assert receipts[0].tree_size == before + 1
    assert {r.tree_size for r in receipts[1:]} == {before + 8}  # one checkpoint for the group
    assert len({r.checkpoint for r in receipts[1:]}) == 1
    assert sorted(r.seq for r in receipts) == list(range(before, before + 8))
    assert {r.entry_id for r in receipts} == {e.entry_id for e in entries}
    for receipt in receipts:
        check(receipt, ledger)
    assert verify_database(ledger.db, verifier_key=ledger.verifier_key).records == ledger.size()


def test_a_rejected_entry_fails_alone_and_the_rest_of_its_group_commits(world: World) -> None:
    ledger = world.ledger
    shop = world.register("shop-one", "workshop")
    good = [key_add(world, shop) for _ in range(4)]
    forged = SignedEntry(entry=key_add(world, shop).entry, signature=bytes(64))
    stranger = key_add(world, Actor("shop-one", KeyPair.generate()))
    queued = [good[1], forged, good[2], stranger, good[3]]
    gate = Gate(ledger.append_batch, others=len(queued))
    committer: GroupCommitter[SignedEntry, Receipt] = GroupCommitter(gate, rejected_entry)
    before = ledger.size()
    futures = run_gated(gate, committer, good[0], queued)
    errors = {i: f.exception() for i, f in enumerate(futures)}
    assert isinstance(errors[2], SignatureError) and errors[2].code == "bad_signature"
    assert isinstance(errors[4], SignatureError) and errors[4].code == "unknown_key"
    receipts = [f.result() for i, f in enumerate(futures) if errors[i] is None]
    assert len(receipts) == 4
    assert ledger.size() == before + 4
    stored = {ledger.record(seq).signed.entry_id for seq in range(before, before + 4)}
    assert stored == {e.entry_id for e in good}
    for receipt in receipts:
        check(receipt, ledger)
    # First batch [good0]; then the group of 5 was tried, shrunk by each rejection, and committed.
    assert [len(call) for call in gate.calls] == [1, 5, 4, 3]
    assert verify_database(ledger.db, verifier_key=ledger.verifier_key).records == ledger.size()


def test_a_failing_group_fails_every_caller_and_the_committer_recovers() -> None:
    boom = RuntimeError("database went away")
    attempts: list[list[int]] = []

    def batch(items: Sequence[int]) -> list[int]:
        attempts.append(list(items))
        if len(attempts) == 2:
            raise boom
        return [i * 10 for i in items]

    gate = Gate(batch, others=3)
    committer: GroupCommitter[int, int] = GroupCommitter(gate, lambda exc: None)
    futures = run_gated(gate, committer, 1, [2, 3, 4])
    assert futures[0].result() == 10
    assert [f.exception() for f in futures[1:]] == [boom, boom, boom]
    assert committer.submit(5) == 50  # the lead was released: the next caller is not stuck
    assert attempts == [[1], [2, 3, 4], [5]]


def test_groups_are_bounded_and_the_lead_passes_on() -> None:
    def batch(items: Sequence[int]) -> list[int]:
        return list(items)

    gate = Gate(batch, others=5)
    committer: GroupCommitter[int, int] = GroupCommitter(gate, lambda exc: None, max_group=2)
    futures = run_gated(gate, committer, 0, [1, 2, 3, 4, 5])
    assert [f.result() for f in futures] == [0, 1, 2, 3, 4, 5]
    assert gate.calls == [[0], [1, 2], [3, 4], [5]]


def test_rejections_are_translated_only_when_they_name_an_item() -> None:
    bad = InvalidInput("no", code="invalid_entry")

    def batch(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise KeyError(items.index(13))
        return list(items)

    def translate(exc: BaseException) -> Rejected | None:
        return Rejected(exc.args[0], bad) if isinstance(exc, KeyError) else None

    committer: GroupCommitter[int, int] = GroupCommitter(batch, translate)
    assert committer.submit(7) == 7
    with pytest.raises(LedgerError) as caught:
        committer.submit(13)
    assert caught.value is bad
    with pytest.raises(ValueError):
        GroupCommitter(batch, translate, max_group=0)


def test_many_threads_appending_through_the_ledger_keep_the_log_whole(world: World) -> None:
    """Ledger.append itself under thread concurrency: every receipt verifies, no gaps, no duplicates."""
    ledger = world.ledger
    shop = world.register("shop-one", "workshop")
    before = ledger.size()
    entries = [key_add(world, shop) for _ in range(60)]
    start = threading.Barrier(6)

    def worker(chunk: list[SignedEntry]) -> list[Receipt]:
        start.wait(timeout=WAIT)
        return [ledger.append(e) for e in chunk]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(worker, [entries[i::6] for i in range(6)]))
    receipts = [r for chunk in results for r in chunk]
    assert sorted(r.seq for r in receipts) == list(range(before, before + 60))
    assert ledger.size() == before + 60
    for receipt in receipts:
        check(receipt, ledger)
    assert verify_database(ledger.db, verifier_key=ledger.verifier_key).records == ledger.size()


def test_futures_are_committed_in_groups_by_the_committer_thread_with_the_same_rules(world: World) -> None:
    """``submit_future`` (the HTTP API's path): entries queued while a group commits form the next group,
    a rejected entry fails alone, every future resolves, and the committer thread ends when idle and
    starts again on the next entry."""
    ledger = world.ledger
    shop = world.register("shop-two", "workshop")
    release = threading.Event()
    calls: list[int] = []

    def held(items: Sequence[SignedEntry]) -> list[Receipt]:
        calls.append(len(items))
        if len(calls) == 1:
            assert release.wait(WAIT)
        return ledger.append_batch(items)

    committer: GroupCommitter[SignedEntry, Receipt] = GroupCommitter(held, rejected_entry, idle_seconds=0.05)
    before = ledger.size()
    first = committer.submit_future(key_add(world, shop))
    _until(lambda: calls == [1])  # the committer is inside the first group
    good = [key_add(world, shop) for _ in range(5)]
    forged = SignedEntry(entry=key_add(world, shop).entry, signature=bytes(64))
    queued = [*good[:2], forged, *good[2:]]
    futures = [committer.submit_future(item) for item in queued]
    release.set()
    check(first.result(timeout=WAIT), ledger)
    error = futures[2].exception(timeout=WAIT)
    assert isinstance(error, SignatureError) and error.code == "bad_signature"
    receipts = [f.result(timeout=WAIT) for i, f in enumerate(futures) if i != 2]
    assert calls == [1, 6, 5]  # the queued six as one group, retried without the forged entry
    assert len({r.checkpoint for r in receipts}) == 1
    for receipt in receipts:
        check(receipt, ledger)
    assert ledger.size() == before + 6

    _until(lambda: not committer.committer_running)  # the idle committer thread ended ...
    late = committer.submit_future(key_add(world, shop))  # ... and the next entry starts another
    check(late.result(timeout=WAIT), ledger)
    assert verify_database(ledger.db, verifier_key=ledger.verifier_key).records == ledger.size()
