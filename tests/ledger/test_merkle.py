"""Tests for ledger.merkle: known-answer vectors, a naive reference, properties and read costs."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.epcis.validate import standards_root
from ledger.errors import IntegrityError, InvalidInput, ProofError
from ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    MemoryNodes,
    NodeKey,
    consistency_proof,
    decode_hash,
    decode_proof,
    encode_proof,
    inclusion_plan,
    inclusion_proof,
    leaf_hash,
    node_hash,
    nodes_for_append,
    range_keys,
    root_from_leaf_hashes,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

TLOG = standards_root() / "tlog"
TESTDATA = TLOG / "merkle-testdata"

MAX_N = 300


# ------------------------------------------------------------- naive reference (RFC 9162 §2.1, from all leaves)

LEAF_HASHES = [hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(MAX_N)]


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.cache
def ref_mth(lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) over LEAF_HASHES, straight from the RFC definition."""
    if hi == lo:
        return hashlib.sha256(b"").digest()
    if hi - lo == 1:
        return LEAF_HASHES[lo]
    k = _k(hi - lo)
    return hashlib.sha256(b"\x01" + ref_mth(lo, lo + k) + ref_mth(lo + k, hi)).digest()


def ref_path(m: int, lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]) (RFC 9162 §2.1.3.1)."""
    if hi - lo == 1:
        return []
    k = _k(hi - lo)
    if m < k:
        return [*ref_path(m, lo, lo + k), ref_mth(lo + k, hi)]
    return [*ref_path(m - k, lo + k, hi), ref_mth(lo, lo + k)]


def ref_subproof(m: int, lo: int, hi: int, b: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b) (RFC 9162 §2.1.4.1)."""
    if m == hi - lo:
        return [] if b else [ref_mth(lo, hi)]
    k = _k(hi - lo)
    if m <= k:
        return [*ref_subproof(m, lo, lo + k, b), ref_mth(lo + k, hi)]
    return [*ref_subproof(m - k, lo + k, hi, False), ref_mth(lo, lo + k)]


def ref_consistency(m: int, n: int) -> list[bytes]:
    return [] if m in (0, n) else ref_subproof(m, 0, n, True)


def _build(n: int) -> MemoryNodes:
    store = MemoryNodes()
    for h in LEAF_HASHES[:n]:
        store.append(h)
    return store


STORE = _build(MAX_N)


def flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --------------------------------------------------------------------------- known-answer vectors

VectorCheck = Callable[[], None]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(data: Mapping[str, Any]) -> list[bytes]:
    return [_b64(p) for p in data["proof"] or []]


def _bit_ceil(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def _vector_check(kind: str, d: Mapping[str, Any]) -> VectorCheck | None:
    """The RFC 9162 verification a vector file describes, or None if it is outside RFC 9162.

    The subtree folders are Merkle Tree Certificate vectors. Subtree ``[0, end)`` is the
    tree of size ``end``; a valid subtree ``[start, end)`` (``start`` a multiple of
    ``bit_ceil(end - start)``) is a tree of its own over those leaves, so its inclusion
    proofs are RFC 9162 proofs of ``leafIdx - start`` in size ``end - start``. Consistency of
    a subtree that does not start at 0, and of the empty subtree, has no RFC 9162 meaning.
    """
    proof = _proof(d)
    if kind == "inclusion":
        leaf, index, size, root = _b64(d["leafHash"]), d["leafIdx"], d["treeSize"], _b64(d["root"])
        return lambda: verify_inclusion(leaf, index, size, proof, root)
    if kind == "consistency":
        m, n, r1, r2 = d["size1"], d["size2"], _b64(d["root1"]), _b64(d["root2"])
        return lambda: verify_consistency(m, n, r1, r2, proof)
    if kind == "subtreeinclusion":
        start, end = d["start"], d["end"]
        if start != 0 and not (start < end and start % _bit_ceil(end - start) == 0):
            return None
        leaf, index, root = _b64(d["leafHash"]), d["leafIdx"] - start, _b64(d["root"])
        return lambda: verify_inclusion(leaf, index, end - start, proof, root)
    if kind == "subtreeconsistency":
        if d["start"] != 0 or d["end"] == 0:
            return None
        m, n, r1, r2 = d["end"], d["size"], _b64(d["root1"]), _b64(d["root2"])
        return lambda: verify_consistency(m, n, r1, r2, proof)
    raise AssertionError(f"unknown vector folder {kind}")


def _load_vectors() -> tuple[list[Any], list[str]]:
    cases: list[Any] = []
    skipped: list[str] = []
    for path in sorted(TESTDATA.rglob("*.json")):
        rel = path.relative_to(TESTDATA).as_posix()
        data = json.loads(path.read_text())
        check = _vector_check(rel.split("/")[0], data)
        if check is None:
            skipped.append(rel)
        else:
            cases.append(pytest.param(rel, data, check, id=rel))
    return cases, skipped


VECTORS, NOT_RFC9162 = _load_vectors()
REFERENCE = json.loads((TLOG / "rfc6962-roots.json").read_text())
REFERENCE_LEAVES = [leaf_hash(bytes.fromhex(x)) for x in REFERENCE["leaf_inputs_hex"]]
REFERENCE_ROOTS = [bytes.fromhex(x) for x in REFERENCE["root_by_tree_size_hex"]]
REFERENCE_STORE = MemoryNodes()
for _h in REFERENCE_LEAVES:
    REFERENCE_STORE.append(_h)


def test_vector_corpus_is_complete() -> None:
    # 518 files: 98 inclusion, 98 consistency, 204 subtree inclusion, 118 subtree consistency.
    assert len(VECTORS) + len(NOT_RFC9162) == 518
    # Only MTC-specific subtree files are left out: invalid or non-prefix subtree bounds and empty subtrees.
    assert all(rel.startswith("subtree") for rel in NOT_RFC9162)
    assert len(NOT_RFC9162) == 38
    assert sum(1 for p in VECTORS if not p.values[1]["wantErr"]) >= 30


@pytest.mark.parametrize(("rel", "data", "check"), VECTORS)
def test_vector(rel: str, data: Mapping[str, Any], check: VectorCheck) -> None:
    if data["wantErr"]:
        with pytest.raises(ProofError):
            check()
        return
    check()
    # Happy paths over the RFC 6962 reference leaves: our stored-node proofs are byte-identical.
    proof = _proof(data)
    if rel.startswith("inclusion/") and data["root"] == _b64_root(data["treeSize"]):
        assert REFERENCE_STORE.inclusion_proof(data["leafIdx"], data["treeSize"]) == proof
    if rel.startswith("consistency/") and data["root2"] == _b64_root(data["size2"]):
        assert REFERENCE_STORE.consistency_proof(data["size1"], data["size2"]) == proof


def _b64_root(size: int) -> str | None:
    if size >= len(REFERENCE_ROOTS):
        return None
    return base64.b64encode(REFERENCE_ROOTS[size]).decode()


def test_vectors_exercise_the_proof_generator() -> None:
    happy = [p.values[0] for p in VECTORS if not p.values[1]["wantErr"]]
    assert "inclusion/1/happy-path.json" in happy
    assert "consistency/2/happy-path.json" in happy
    data = json.loads((TESTDATA / "consistency/2/happy-path.json").read_text())
    assert data["size1"] == 6
    assert REFERENCE_STORE.consistency_proof(6, 8) == _proof(data)


@pytest.mark.parametrize("size", range(9))
def test_rfc6962_reference_roots(size: int) -> None:
    expected = REFERENCE_ROOTS[size]
    assert root_from_leaf_hashes(REFERENCE_LEAVES[:size]) == expected
    assert root_hash(size, REFERENCE_STORE.get) == expected
    assert REFERENCE_STORE.root(size) == expected
    store = MemoryNodes()
    compact = CompactRange()
    for h in REFERENCE_LEAVES[:size]:
        store.append(h)
        compact.append(h)
    assert store.root() == expected
    assert compact.root() == expected


def test_hash_definitions() -> None:
    assert bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == EMPTY_ROOT
    assert leaf_hash(b"") == bytes.fromhex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert len(EMPTY_ROOT) == HASH_SIZE


# --------------------------------------------------------------------------- exhaustive small trees


def test_exhaustive_up_to_64() -> None:
    for n in range(1, 65):
        root = root_hash(n, STORE.get)
        assert root == ref_mth(0, n) == root_from_leaf_hashes(LEAF_HASHES[:n])
        for i in range(n):
            proof = inclusion_proof(i, n, STORE.get)
            assert proof == ref_path(i, 0, n)
            verify_inclusion(LEAF_HASHES[i], i, n, proof, root)
            bit = (i * 37 + n) % 256
            for j in range(len(proof)):
                bad = [*proof[:j], flip(proof[j], bit), *proof[j + 1 :]]
                with pytest.raises(ProofError):
                    verify_inclusion(LEAF_HASHES[i], i, n, bad, root)
            with pytest.raises(ProofError):
                verify_inclusion(flip(LEAF_HASHES[i], bit), i, n, proof, root)
            if n > 1:
                with pytest.raises(ProofError):
                    verify_inclusion(LEAF_HASHES[i], (i + 1) % n, n, proof, root)
        for m in range(n + 1):
            proof = consistency_proof(m, n, STORE.get)
            assert proof == ref_consistency(m, n)
            old_root = root_hash(m, STORE.get)
            verify_consistency(m, n, old_root, root, proof)
            bit = (m * 53 + n) % 256
            for j in range(len(proof)):
                bad = [*proof[:j], flip(proof[j], bit), *proof[j + 1 :]]
                with pytest.raises(ProofError):
                    verify_consistency(m, n, old_root, root, bad)
            if m > 0:  # a proof from the empty tree says nothing about the new root
                with pytest.raises(ProofError):
                    verify_consistency(m, n, old_root, flip(root, bit), proof)


# --------------------------------------------------------------------------- properties


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[int, int, int]:
    n = draw(st.integers(1, MAX_N))
    return n, draw(st.integers(0, n - 1)), draw(st.integers(0, 8 * HASH_SIZE - 1))


@st.composite
def tree_and_old_size(draw: st.DrawFn) -> tuple[int, int, int]:
    n = draw(st.integers(0, MAX_N))
    return n, draw(st.integers(0, n)), draw(st.integers(0, 8 * HASH_SIZE - 1))


@settings(max_examples=300, deadline=None)
@given(tree_and_index())
def test_inclusion_proofs_property(case: tuple[int, int, int]) -> None:
    n, i, bit = case
    store = _build(n)
    root = store.root()
    assert root == ref_mth(0, n)
    proof = store.inclusion_proof(i, n)
    assert proof == ref_path(i, 0, n)
    leaf = LEAF_HASHES[i]
    verify_inclusion(leaf, i, n, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(flip(leaf, bit), i, n, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, i, n, proof, flip(root, bit))
    for j in range(len(proof)):
        bad = [*proof[:j], flip(proof[j], bit), *proof[j + 1 :]]
        with pytest.raises(ProofError):
            verify_inclusion(leaf, i, n, bad, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, i, n, [*proof, proof[-1] if proof else root], root)
    if proof:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, i, n, proof[:-1], root)


@settings(max_examples=300, deadline=None)
@given(tree_and_old_size())
def test_consistency_proofs_property(case: tuple[int, int, int]) -> None:
    n, m, bit = case
    store = _build(n)
    new_root, old_root = store.root(), store.root(m)
    assert old_root == ref_mth(0, m)
    proof = store.consistency_proof(m, n)
    assert proof == ref_consistency(m, n)
    verify_consistency(m, n, old_root, new_root, proof)
    if m > 0:  # a proof from the empty tree says nothing about the new root
        with pytest.raises(ProofError):
            verify_consistency(m, n, old_root, flip(new_root, bit), proof)
    with pytest.raises(ProofError):
        verify_consistency(m, n, flip(old_root, bit), new_root, proof)
    for j in range(len(proof)):
        bad = [*proof[:j], flip(proof[j], bit), *proof[j + 1 :]]
        with pytest.raises(ProofError):
            verify_consistency(m, n, old_root, new_root, bad)
    with pytest.raises(ProofError):
        verify_consistency(m, n, old_root, new_root, [*proof, new_root])
    if proof:
        with pytest.raises(ProofError):
            verify_consistency(m, n, old_root, new_root, proof[:-1])
    if m < n:
        with pytest.raises(ProofError):
            verify_consistency(n, m, new_root, old_root, proof)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, MAX_N), st.integers(0, 8 * HASH_SIZE - 1))
def test_every_bit_of_every_proof_element_matters(n: int, bit: int) -> None:
    i = n // 2
    proof = STORE.inclusion_proof(i, n)
    root = STORE.root(n)
    for b in range(bit, 8 * HASH_SIZE, 29):
        for j in range(len(proof)):
            with pytest.raises(ProofError):
                verify_inclusion(LEAF_HASHES[i], i, n, [*proof[:j], flip(proof[j], b), *proof[j + 1 :]], root)


def test_empty_tree_consistency() -> None:
    for n in (0, 1, 2, 7, MAX_N):
        verify_consistency(0, n, EMPTY_ROOT, STORE.root(n), [])
        assert STORE.consistency_proof(0, n) == []
    with pytest.raises(ProofError):
        verify_consistency(0, 5, b"\x00" * 32, STORE.root(5), [])
    with pytest.raises(ProofError):
        verify_consistency(0, 5, EMPTY_ROOT, STORE.root(5), [STORE.root(5)])
    with pytest.raises(ProofError):
        verify_consistency(0, 0, EMPTY_ROOT, STORE.root(1), [])


def test_log_shrinking_is_rejected() -> None:
    with pytest.raises(ProofError):
        verify_consistency(5, 4, STORE.root(5), STORE.root(4), STORE.consistency_proof(4, 5))
    with pytest.raises(ProofError):
        verify_inclusion(LEAF_HASHES[3], 3, 3, [], STORE.root(3))
    with pytest.raises(ProofError):
        verify_inclusion(LEAF_HASHES[0], -1, 3, STORE.inclusion_proof(0, 3), STORE.root(3))


def test_malformed_proof_elements_are_proof_errors() -> None:
    root = STORE.root(5)
    proof = STORE.inclusion_proof(4, 5)
    for bad in (proof[0][:31], proof[0] + b"\x00", proof[0].hex()):
        with pytest.raises(ProofError, match=r"proof\[0\]"):
            verify_inclusion(LEAF_HASHES[4], 4, 5, [bad, *proof[1:]], root)  # type: ignore[list-item]
    proof = STORE.consistency_proof(3, 5)
    with pytest.raises(ProofError, match=r"proof\[1\]"):
        verify_consistency(3, 5, STORE.root(3), root, [proof[0], b"", *proof[1:]])


def test_compact_range_matches_store() -> None:
    compact = CompactRange()
    assert compact.size == 0
    assert compact.root() == EMPTY_ROOT
    for n in range(1, MAX_N + 1):
        compact.append(LEAF_HASHES[n - 1])
        assert compact.size == n
        assert compact.root() == STORE.root(n) == ref_mth(0, n)
    with pytest.raises(InvalidInput):
        compact.append(b"short")


# --------------------------------------------------------------------------- storage model and read costs


class CountingGetter:
    """Wraps a getter and records every batched read."""

    def __init__(self, inner: Callable[[Sequence[NodeKey]], Mapping[NodeKey, bytes]]) -> None:
        self.inner = inner
        self.calls: list[list[NodeKey]] = []

    def __call__(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        self.calls.append(list(keys))
        return self.inner(keys)


def fabricated(keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
    return {k: hashlib.sha256(f"{k[0]}/{k[1]}".encode()).digest() for k in keys}


def _assert_one_small_read(getter: CountingGetter, size: int) -> None:
    assert len(getter.calls) == 1
    keys = getter.calls[0]
    assert len(keys) == len(set(keys))
    assert len(keys) <= 2 * size.bit_length()
    for level, index in keys:  # only complete subtrees of the tree of this size, i.e. nodes that are stored
        assert level >= 0
        assert index >= 0
        assert (index + 1) << level <= size


@pytest.mark.parametrize("size", [1_000_000, 2**20, 2**20 + 1, 2**40 - 1, 123_456_789_012])
def test_reads_are_one_batch_of_log_n_keys(size: int) -> None:
    getter = CountingGetter(fabricated)
    root_hash(size, getter)
    _assert_one_small_read(getter, size)
    assert len(getter.calls[0]) == size.bit_count()
    for index in (0, 1, size // 3, size // 2, size - 2, size - 1):
        getter = CountingGetter(fabricated)
        proof = inclusion_proof(index, size, getter)
        _assert_one_small_read(getter, size)
        assert len(proof) <= size.bit_length()
    for old in {1, 2, size // 3, 1 << ((size - 1).bit_length() - 1), size - 1}:
        getter = CountingGetter(fabricated)
        proof = consistency_proof(old, size, getter)
        _assert_one_small_read(getter, size)
        assert len(proof) <= 2 * size.bit_length()


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 2**62), st.data())
def test_reads_stay_logarithmic(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size))
    for call in (
        lambda g: root_hash(size, g),
        lambda g: inclusion_proof(index, size, g),
        lambda g: consistency_proof(old, size, g),
    ):
        getter = CountingGetter(fabricated)
        call(getter)
        assert len(getter.calls) <= 1
        if getter.calls:
            _assert_one_small_read(getter, size)


def _complete_keys(n: int) -> set[NodeKey]:
    return {(level, idx) for level in range(n.bit_length()) for idx in range(n >> level)}


def test_append_stores_each_completed_subtree_once() -> None:
    store = MemoryNodes()
    for n in range(MAX_N):
        getter = CountingGetter(store.get)
        new = nodes_for_append(n, LEAF_HASHES[n], getter)
        trailing_ones = (~n & (n + 1)).bit_length() - 1
        assert len(new) == trailing_ones + 1
        assert len(getter.calls) == (1 if trailing_ones else 0)
        if getter.calls:
            assert len(getter.calls[0]) == trailing_ones
        assert new[0] == ((0, n), LEAF_HASHES[n])
        for (level, idx), value in new:
            assert value == ref_mth(idx << level, (idx + 1) << level)
        store.append(LEAF_HASHES[n])
        assert len(store) == 2 * (n + 1) - (n + 1).bit_count()
    assert set(STORE.get(sorted(_complete_keys(MAX_N)))) == _complete_keys(MAX_N)
    assert len(STORE) == len(_complete_keys(MAX_N))


@pytest.mark.parametrize(("start", "end"), [(0, 0), (0, 1), (0, 13), (3, 17), (5, 6), (8, 16), (1, 300)])
def test_range_keys_are_maximal_aligned_and_cover(start: int, end: int) -> None:
    keys = range_keys(start, end)
    pos = start
    for level, idx in keys:
        assert idx << level == pos
        pos = (idx + 1) << level
        # Maximal: the parent is either misaligned or reaches past the range.
        assert idx % 2 == 1 or ((idx + 2) << level) > end
    assert pos == end
    assert len(keys) <= 2 * max(1, (end - start).bit_length())


def test_missing_node_is_an_integrity_error() -> None:
    def losing(lost: NodeKey) -> Callable[[Sequence[NodeKey]], Mapping[NodeKey, bytes]]:
        def get(keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
            return {k: v for k, v in STORE.get(keys).items() if k != lost}

        return get

    with pytest.raises(IntegrityError, match=r"level=2, index=1"):
        inclusion_proof(0, 13, losing((2, 1)))
    with pytest.raises(IntegrityError, match=r"level=1, index=2"):
        root_hash(6, losing((1, 2)))
    with pytest.raises(IntegrityError, match=r"level=1, index=3"):
        consistency_proof(6, 9, losing((1, 3)))
    with pytest.raises(IntegrityError, match=r"level=0, index=6"):
        nodes_for_append(7, LEAF_HASHES[7], losing((0, 6)))

    def short(keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        return dict.fromkeys(keys, b"x")

    with pytest.raises(IntegrityError):
        root_hash(3, short)


def test_bad_arguments_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        inclusion_proof(5, 5, STORE.get)
    with pytest.raises(InvalidInput):
        inclusion_proof(-1, 5, STORE.get)
    with pytest.raises(InvalidInput):
        consistency_proof(6, 5, STORE.get)
    with pytest.raises(InvalidInput):
        root_hash(-1, STORE.get)
    with pytest.raises(InvalidInput):
        range_keys(5, 4)
    with pytest.raises(InvalidInput):
        nodes_for_append(0, b"\x00" * 31, STORE.get)
    with pytest.raises(InvalidInput):
        STORE.inclusion_proof(0, MAX_N + 1)
    with pytest.raises(InvalidInput):
        STORE.root(MAX_N + 1)


# --------------------------------------------------------------------------- base64 wire form


def test_proof_base64_round_trip() -> None:
    proof = STORE.inclusion_proof(7, 100)
    encoded = encode_proof(proof)
    assert all(isinstance(s, str) and len(s) == 44 for s in encoded)
    assert decode_proof(encoded) == proof
    assert decode_hash(base64.b64encode(EMPTY_ROOT).decode()) == EMPTY_ROOT


@pytest.mark.parametrize(
    "bad",
    [
        ["not base64!"],
        [base64.b64encode(b"\x00" * 31).decode()],
        [base64.b64encode(b"\x00" * 33).decode()],
        [base64.b64encode(b"\x00" * 32).decode().rstrip("=")],
        [base64.urlsafe_b64encode(b"\xff" * 32).decode()],
        [7],
        "AAAA",
    ],
)
def test_decode_proof_rejects_malformed(bad: Any) -> None:
    with pytest.raises(InvalidInput):
        decode_proof(bad)


# --------------------------------------------------------------------------- proofs in parts


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2**40), st.data())
def test_plans_of_a_low_and_a_high_level_range_make_the_whole_plan(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    split = data.draw(st.integers(0, 44))
    whole = inclusion_plan(index, size)
    low = inclusion_plan(index, size, levels=(0, split))
    high = inclusion_plan(index, size, levels=(split, None))
    assert low + high == whole
    assert all(key[0] < split for keys in low for key in keys)


def test_proofs_with_kept_tails_are_the_proofs() -> None:
    """A :class:`ProofPlan` with a node cache keeps each proof's hashes from TAIL_LEVEL up by that level's
    node and the tree's size, and the next proof below the same node plans only the levels beneath: every
    proof is still the RFC's, and verifies against the root; the tail of another size is never used."""
    from ledger.storage.proof_reads import TAIL_LEVEL, NodeCache, ProofPlan

    assert MAX_N > 1 << TAIL_LEVEL  # some records share a tail, some trees have two
    cache = NodeCache(tails=64)
    planned: list[int] = []
    for n in (MAX_N, MAX_N - 1, 1 << TAIL_LEVEL, (1 << TAIL_LEVEL) + 1):
        root = STORE.root(n)
        for i in range(n):
            plan = ProofPlan(i, n, cache)
            planned.append(len(plan.plan))
            leaf, proof = plan.proof(STORE.get(plan.nodes()))
            assert leaf == LEAF_HASHES[i]
            assert proof == ref_path(i, 0, n), (i, n)
            verify_inclusion(leaf, i, n, proof, root)
            first_below_node = i & ((1 << TAIL_LEVEL) - 1) == 0
            assert (plan.tail is None) == first_below_node, (i, n)
    assert min(planned) < max(planned)
    assert len(cache._tails) == 2 + 2 + 1 + 2
    # Without a cache, or with a cache of one tail, the same proofs.
    small = NodeCache(tails=1)
    for i in (0, 255, 256, 299, 3, 260, 7):
        for keeper in (None, small):
            plan = ProofPlan(i, MAX_N, keeper)
            assert plan.proof(STORE.get(plan.nodes()))[1] == ref_path(i, 0, MAX_N)
    assert len(small._tails) == 1
