"""A batch is applied exactly as its entries would be one by one.

Handlers of a batch stage their projection rows and the batch writes them
together (see ``ledger.storage.staging``), so an entry must still see what
the entries before it in the same batch did — above all an ``entry.correct``
of an entry earlier in the batch, whose handler looks that entry up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ledger.entries import SignedEntry, make_signed_entry
from ledger.errors import LedgerError
from ledger.keys import KeyPair, b64encode
from ledger.log import BatchRejected, Ledger
from ledger.replay import dump_state
from ledger.storage.db import Database
from tests.ledger.domain_support import GLN_OSLO, GTIN_BRAKE, OEM_PREFIX, VALID_FROM, vehicle

ORIGIN = "test.partsledger/batch"
NOW = "2026-11-29T00:00:00Z"
OPERATOR = "partsledger-operator"


class Script:
    """Pre-signed entries with fixed times, so two ledgers can be fed the very same bytes."""

    def __init__(self) -> None:
        self.log_key = KeyPair.generate()
        self.keys = {name: KeyPair.generate() for name in (OPERATOR, "dragon-motors", "oslo-ev", "indie-garage")}
        self.count = 0

    def entry(self, org: str, type: str, body: dict[str, Any]) -> SignedEntry:
        self.count += 1
        return make_signed_entry(self.keys[org], origin=ORIGIN, type=type, org=org, body=body, time=NOW,
                                 nonce=f"nonce-{self.count:012d}")

    def setup(self) -> list[SignedEntry]:
        def register(org: str, kind: str, **fields: Any) -> SignedEntry:
            return self.entry(OPERATOR, "org.register", {"org_id": org, "kind": kind, "name": org.title(),
                                                         "public_keys": [b64encode(self.keys[org].public_key)],
                                                         **fields})

        return [
            self.entry(OPERATOR, "log.genesis", {"org_id": OPERATOR, "name": "Operator",
                                                 "public_keys": [b64encode(self.keys[OPERATOR].public_key)]}),
            register("dragon-motors", "oem", country="CN", gs1_prefixes=[OEM_PREFIX]),
            register("oslo-ev", "workshop", country="NO", glns=[GLN_OSLO]),
            register("indie-garage", "workshop", country="NO"),
            self.entry("dragon-motors", "grant.issue", {"grant_id": "g-workshop", "kind": "workshop",
                                                        "grantee": "oslo-ev", "activities": ["install", "remove"],
                                                        "valid_from": VALID_FROM}),
        ]

    def story(self) -> list[SignedEntry]:
        """Commission, deliver, install twice (clone suspected), and correct entries of this very story."""
        p1 = {"gtin": GTIN_BRAKE, "serial": "BATCH-0001"}
        p2 = {"gtin": GTIN_BRAKE, "serial": "BATCH-0002"}
        commission_1 = self.entry("dragon-motors", "part.commission", {**p1, "category": "brakes", "lot": "L1"})
        commission_2 = self.entry("dragon-motors", "part.commission", {**p2, "category": "brakes", "lot": "L1"})
        ship = self.entry("dragon-motors", "part.ship", {**p1, "to": "oslo-ev"})
        receive = self.entry("oslo-ev", "part.receive", p1)
        install_1 = self.entry("oslo-ev", "part.install", {**p1, "vehicle": vehicle("car-1")})
        clone = self.entry("indie-garage", "part.install", {**p1, "vehicle": vehicle("car-2")})
        return [
            commission_1, commission_2, ship, receive, install_1, clone,
            # the suspicious second installation is corrected by its author: its flags close, the part is
            # no longer suspect
            self.entry("indie-garage", "entry.correct", {"corrects": clone.entry_id, "reason_code": "wrong_part"}),
            # the brand owner corrects a commissioning of the same batch
            self.entry("dragon-motors", "entry.correct", {"corrects": commission_2.entry_id,
                                                          "reason_code": "entered_in_error"}),
        ]


def _ledger(url: str, script: Script) -> Ledger:
    db = Database(url)
    db.migrate()
    return Ledger(db, origin=ORIGIN, log_key=script.log_key, clock=lambda: NOW)


def _records(ledger: Ledger) -> list[tuple[int, bytes, bytes]]:
    return list(ledger.iter_raw_records())


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def ledger(script: Script, db_url_factory: Callable[[], str]) -> Iterator[Ledger]:
    """A ledger holding the script's setup (orgs, keys, grants), appended one by one."""
    ledger = _ledger(db_url_factory(), script)
    try:
        for signed in script.setup():
            ledger.append(signed)
        yield ledger
    finally:
        ledger.db.dispose()


def test_batch_with_an_entry_and_its_correction_equals_one_by_one(
        script: Script, db_url_factory: Callable[[], str]) -> None:
    setup, story = script.setup(), script.story()
    one_by_one, batched = _ledger(db_url_factory(), script), _ledger(db_url_factory(), script)
    try:
        for signed in setup + story:
            one_by_one.append(signed)
        for signed in setup:
            batched.append(signed)
        receipts = batched.append_batch(story)

        assert [r.seq for r in receipts] == list(range(len(setup), len(setup) + len(story)))
        assert not any(r.duplicate for r in receipts)
        assert [f.kind for f in receipts[5].flags] == ["clone_suspected", "independent_service"]
        assert _records(batched) == _records(one_by_one)  # byte-identical records, same chain
        state = dump_state(batched.db)
        assert state == dump_state(one_by_one.db)
        # and the corrections really did what they say, within the batch
        assert {(c["corrects"], c["corrected_seq"]) for c in state["corrections"]} == {
            (story[5].entry_id, len(setup) + 5), (story[1].entry_id, len(setup) + 1)}
        part = next(p for p in state["parts"] if p["serial"] == "BATCH-0001")
        assert part["suspect"] is False and part["vehicle"] == vehicle("car-2")
    finally:
        one_by_one.db.dispose()
        batched.db.dispose()


def test_correction_of_an_entry_later_in_the_batch_is_rejected(
        script: Script, ledger: Ledger) -> None:
    size = ledger.size()
    commission = script.entry("dragon-motors", "part.commission",
                              {"gtin": GTIN_BRAKE, "serial": "LATER-1", "category": "brakes"})
    correction = script.entry("dragon-motors", "entry.correct",
                              {"corrects": commission.entry_id, "reason_code": "entered_in_error"})
    with pytest.raises(BatchRejected) as info:
        ledger.append_batch([correction, commission])
    assert (info.value.index, info.value.code) == (0, "unknown_entry")
    assert ledger.size() == size
    # in the right order the same two entries go in
    assert [r.seq for r in ledger.append_batch([commission, correction])] == [size, size + 1]


def test_serial_commissioned_twice_in_one_batch_is_rejected_naming_the_second(
        script: Script, ledger: Ledger) -> None:
    size = ledger.size()
    body = {"gtin": GTIN_BRAKE, "serial": "TWICE-1", "category": "brakes"}
    first = script.entry("dragon-motors", "part.commission", body)
    second = script.entry("dragon-motors", "part.commission", body)
    with pytest.raises(LedgerError) as info:
        ledger.append_batch([first, second])
    assert isinstance(info.value, BatchRejected) and info.value.index == 1
    assert ledger.size() == size


def test_key_added_earlier_in_a_batch_signs_a_later_entry(
        script: Script, ledger: Ledger) -> None:
    new_key = KeyPair.generate()
    add = script.entry("oslo-ev", "key.add", {"org_id": "oslo-ev", "public_key": b64encode(new_key.public_key)})
    revoke = make_signed_entry(new_key, origin=ORIGIN, type="key.revoke", org="oslo-ev",
                               body={"kid": new_key.kid}, time=NOW)
    late = make_signed_entry(new_key, origin=ORIGIN, type="key.add", org="oslo-ev", time=NOW,
                             body={"org_id": "oslo-ev", "public_key": b64encode(KeyPair.generate().public_key)})
    size = ledger.size()
    with pytest.raises(BatchRejected) as info:  # signed by a key revoked earlier in the same batch
        ledger.append_batch([add, revoke, late])
    assert (info.value.index, info.value.code) == (2, "revoked_key")
    assert ledger.size() == size
    assert len(ledger.append_batch([add, revoke])) == 2


def test_bad_signature_and_revoked_key_are_rejected_at_their_index_in_a_large_batch(
        script: Script, ledger: Ledger) -> None:
    """With the signer's key already used in the log, a forged signature is rejected at its index in a large
    batch and alone, and an entry signed by a key revoked earlier in the same batch is rejected in order."""
    def add_key() -> SignedEntry:
        return script.entry("oslo-ev", "key.add",
                            {"org_id": "oslo-ev", "public_key": b64encode(KeyPair.generate().public_key)})

    ledger.append(add_key())  # the workshop has signed an entry: its key is known to the ledger

    good = [add_key() for _ in range(100)]
    forged = add_key()
    forged = SignedEntry(entry=forged.entry, signature=good[0].signature)  # a signature over other bytes
    size = ledger.size()
    for batch, index in (([*good[:70], forged, *good[70:]], 70), ([forged], 0)):
        with pytest.raises(BatchRejected) as info:
            ledger.append_batch(batch)
        assert (info.value.index, info.value.code) == (index, "bad_signature")
    with pytest.raises(LedgerError) as single:
        ledger.append(forged)
    assert single.value.code == "bad_signature"
    assert ledger.size() == size
    assert [r.seq for r in ledger.append_batch(good)] == list(range(size, size + 100))

    revoke = script.entry("oslo-ev", "key.revoke", {"kid": script.keys["oslo-ev"].kid})
    after = add_key()  # validly signed by the key revoked just before it
    with pytest.raises(BatchRejected) as info:
        ledger.append_batch([revoke, after])
    assert (info.value.index, info.value.code) == (1, "revoked_key")
    ledger.append(revoke)
    with pytest.raises(LedgerError) as single:
        ledger.append(after)
    assert single.value.code == "revoked_key"


def test_receipts_of_a_batch_carry_the_same_proofs_as_the_proof_endpoint(
        script: Script, ledger: Ledger) -> None:
    """Receipts' inclusion proofs are computed per batch from memoised subtree hashes; they must equal the
    proofs computed independently from the stored nodes, for every position and several tree sizes."""
    for count in (1, 2, 3, 7, 16, 33, 100, 64, 65, 5, 127):
        batch = [script.entry("oslo-ev", "key.add",
                              {"org_id": "oslo-ev", "public_key": b64encode(KeyPair.generate().public_key)})
                 for _ in range(count)]
        for receipt in ledger.append_batch(batch):
            assert ledger.inclusion_proof(receipt.seq, receipt.tree_size)[2] == receipt.inclusion_proof


@pytest.mark.parametrize("helpers", ["1", "0"], ids=["helper-process", "in-thread"])
def test_first_failure_is_named_whether_signatures_are_checked_by_the_helper_or_in_thread(
        script: Script, ledger: Ledger, helpers: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large batches hand their signatures to a helper process and go on; whichever entry would fail first
    when checked one by one (a forged signature or a policy rejection) is the one named, and the next batch
    gets no stale answer from the helper."""
    from ledger import sigpool

    monkeypatch.setenv("PARTSLEDGER_VERIFY_HELPERS", helpers)
    sigpool._close_shared()  # so that a helper found below was started by this test's batches

    def add_key(org: str = "oslo-ev") -> SignedEntry:
        return script.entry(org, "key.add",
                            {"org_id": "oslo-ev", "public_key": b64encode(KeyPair.generate().public_key)})

    ledger.append(add_key())
    good = [add_key() for _ in range(max(160, sigpool.PARALLEL_MIN_BATCH))]
    forged = SignedEntry(entry=add_key().entry, signature=good[0].signature)
    forbidden = add_key("indie-garage")  # another workshop may not add oslo-ev's keys: role_forbidden
    size = ledger.size()
    cases = [
        ([*good[:80], forged, *good[80:100], forbidden, *good[100:]], 80, "bad_signature"),
        ([*good[:80], forbidden, *good[80:100], forged, *good[100:]], 80, "role_forbidden"),
        ([*good, forged], len(good), "bad_signature"),  # found only when the batch drains the helper
    ]
    for batch, index, code in cases:
        with pytest.raises(BatchRejected) as info:
            ledger.append_batch(batch)
        assert (info.value.index, info.value.code) == (index, code)
        assert ledger.size() == size
    receipts = ledger.append_batch(good)
    assert [r.seq for r in receipts] == list(range(size, size + len(good)))
    if helpers == "1" and sigpool.batch_helpers_enabled():
        assert sigpool._shared is not None  # the helper process did the checking


@pytest.mark.parametrize("helpers", ["1", "0"], ids=["helpers-on", "helpers-off"])
def test_the_helper_started_ahead_is_the_one_large_batches_use(
        script: Script, ledger: Ledger, helpers: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``start_shared_pool`` (a server calls it at startup) starts the helper that the next large batch then
    borrows; with helpers turned off it starts nothing and the batch verifies in its own thread."""
    from ledger import sigpool

    monkeypatch.setenv("PARTSLEDGER_VERIFY_HELPERS", helpers)
    sigpool._close_shared()
    enabled = sigpool.batch_helpers_enabled()
    assert sigpool.start_shared_pool() is enabled
    started = sigpool._shared
    assert (started is not None) is enabled
    borrowed: list[object] = []
    real = sigpool.shared_pool

    @contextlib.contextmanager
    def watching() -> Iterator[sigpool.SignaturePool | None]:
        with real() as pool:
            borrowed.append(pool)
            yield pool

    monkeypatch.setattr("ledger.log.shared_pool", watching)
    batch = [script.entry("oslo-ev", "key.add",
                          {"org_id": "oslo-ev", "public_key": b64encode(KeyPair.generate().public_key)})
             for _ in range(sigpool.PARALLEL_MIN_BATCH)]
    assert len(ledger.append_batch(batch)) == len(batch)
    assert borrowed == [started]
    assert sigpool._shared is started


def test_label_signatures_see_keys_added_and_revoked_earlier_in_the_same_batch(
        script: Script, ledger: Ledger) -> None:
    """A commissioning entry's label signature is checked against the org's keys as they stand at that entry,
    including keys added or revoked by entries before it in the same batch (the keys are remembered per
    transaction and forgotten on every change)."""
    from ledger.digital_link import sign_part_id

    second = KeyPair.generate()
    add = script.entry("dragon-motors", "key.add",
                       {"org_id": "dragon-motors", "public_key": b64encode(second.public_key)})

    def commission(serial: str) -> SignedEntry:
        return script.entry("dragon-motors", "part.commission",
                            {"gtin": GTIN_BRAKE, "serial": serial, "category": "brakes",
                             "part_sig": sign_part_id(second, GTIN_BRAKE, serial)})

    first = commission("LBL-0001")
    before = ledger.size()
    with pytest.raises(BatchRejected) as info:  # signed by a key not added yet
        ledger.append_batch([first, add])
    assert (info.value.index, info.value.code) == (0, "bad_part_sig")
    assert ledger.size() == before
    assert len(ledger.append_batch([add, first])) == 2  # the key added just before signs the label

    revoke = script.entry("dragon-motors", "key.revoke", {"kid": second.kid})
    with pytest.raises(BatchRejected) as info:  # the same key revoked just before
        ledger.append_batch([commission("LBL-0002"), revoke, commission("LBL-0003")])
    assert (info.value.index, info.value.code) == (2, "bad_part_sig")
    assert ledger.size() == before + 2


@pytest.mark.parametrize("case", ["late-first", "early-first", "policy-before-check", "policy-after-check",
                                  "policy-earlier", "all-good"])
def test_signatures_queued_ahead_still_name_the_first_failure_in_entry_order(
        script: Script, ledger: Ledger, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large batch queues the signatures by keys already stored before anything else, and the others (keys
    added in the batch) in their turn, so the helper answers them out of entry order. The batch must still be
    rejected at the entry that would fail first one by one, for the reason it would fail for."""
    from ledger import sigpool

    monkeypatch.setenv("PARTSLEDGER_VERIFY_HELPERS", "1")
    ledger.append(script.entry("oslo-ev", "key.add",
                               {"org_id": "oslo-ev", "public_key": b64encode(KeyPair.generate().public_key)}))
    new_key = KeyPair.generate()

    def by_stored(org_id: str = "oslo-ev", signer: str = "oslo-ev") -> SignedEntry:  # queued ahead
        return script.entry(signer, "key.add",
                            {"org_id": org_id, "public_key": b64encode(KeyPair.generate().public_key)})

    def by_new() -> SignedEntry:  # signed by the key the batch adds: queued in its turn
        return make_signed_entry(new_key, origin=ORIGIN, type="key.add", org="oslo-ev", time=NOW,
                                 body={"org_id": "oslo-ev", "public_key": b64encode(KeyPair.generate().public_key)})

    def forged(signed: SignedEntry) -> SignedEntry:
        return SignedEntry(entry=signed.entry, signature=bytes([signed.signature[0] ^ 1]) + signed.signature[1:])

    batch = [script.entry("oslo-ev", "key.add", {"org_id": "oslo-ev", "public_key": b64encode(new_key.public_key)})]
    batch += [by_new() if i % 2 else by_stored() for i in range(1, 60)]
    assert len(batch) >= sigpool.PARALLEL_MIN_BATCH
    expected: tuple[int, str] | None
    if case == "late-first":  # a late-queued forgery before an early-queued one
        batch[11], batch[40] = forged(batch[11]), forged(batch[40])
        expected = (11, "bad_signature")
    elif case == "early-first":
        batch[10], batch[41] = forged(batch[10]), forged(batch[41])
        expected = (10, "bad_signature")
    elif case == "policy-before-check":  # a stored key named for the wrong org: refused before its signature
        wrong = make_signed_entry(script.keys["oslo-ev"], origin=ORIGIN, type="key.add", org="dragon-motors",
                                  time=NOW, body={"org_id": "dragon-motors",
                                                  "public_key": b64encode(KeyPair.generate().public_key)})
        batch[20], batch[30] = forged(wrong), forged(batch[30])
        expected = (20, "unknown_key")
    elif case == "policy-after-check":  # refused by the handler, after its (forged) signature: the forgery
        batch[20] = forged(by_stored(org_id="indie-garage"))
        expected = (20, "bad_signature")
    elif case == "policy-earlier":  # a handler's refusal before a forgery queued ahead
        batch[12], batch[50] = by_stored(org_id="indie-garage"), forged(batch[50])
        expected = (12, "role_forbidden")
    else:
        expected = None
    size = ledger.size()
    if expected is None:
        assert [r.seq for r in ledger.append_batch(batch)] == list(range(size, size + len(batch)))
        return
    with pytest.raises(BatchRejected) as info:
        ledger.append_batch(batch)
    assert (info.value.index, info.value.code) == expected
    assert ledger.size() == size
    for item in batch[:expected[0]]:  # one by one, everything before it is accepted ...
        ledger.append(item)
    with pytest.raises(LedgerError) as single:  # ... and the named entry fails for the same reason
        ledger.append(batch[expected[0]])
    assert single.value.code == expected[1]
