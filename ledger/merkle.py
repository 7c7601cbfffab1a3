"""RFC 6962 / RFC 9162 Merkle tree over stored complete subtrees (SPEC §3.4).

Hashes::

    leaf_hash(data)        = SHA-256(0x00 || data)
    node_hash(left, right) = SHA-256(0x01 || left || right)
    root of the empty tree = SHA-256("")

Storage model. The server stores the hash of every *complete* subtree and
nothing else. A :data:`NodeKey` ``(level, index)`` names the complete subtree
over leaves ``[index << level, (index + 1) << level)``; level-0 nodes are leaf
hashes. Appending leaf ``n`` stores the leaf and every subtree it completes
(two nodes per leaf amortised); a tree of size ``n`` holds ``2n - popcount(n)``
nodes.

Every hash of a tree of size ``n`` — its root, an inclusion-proof sibling, a
consistency-proof node — is the hash of a range ``[start, end)`` whose
:func:`range_keys` are at most ``2·log2(n)`` stored nodes; folding them from the
right gives the RFC 6962 hash of the range. So :func:`root_hash`,
:func:`inclusion_proof` and :func:`consistency_proof` read O(log n) nodes in one
batched :data:`NodeGetter` call and never touch the leaves. Because stored
nodes never change, the same store answers for any earlier tree size.

Verifiers (:func:`verify_inclusion`, :func:`verify_consistency`) follow the
RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms and raise :class:`ProofError`.
:class:`CompactRange` folds a stream of leaf hashes into a root with
O(log n) memory, for auditors that replay the whole log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

from ledger.errors import IntegrityError, InvalidInput, ProofError

HASH_SIZE: int = 32

NodeKey: TypeAlias = tuple[int, int]
"""``(level, index)``: the complete subtree over leaves ``[index << level, (index + 1) << level)``."""

NodeGetter: TypeAlias = Callable[[Sequence[NodeKey]], Mapping[NodeKey, bytes]]
"""One batched read of stored nodes. It must return every key asked for."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()


# --------------------------------------------------------------------------- helpers


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_count(value: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{field} must be a non-negative integer, got {value!r}", code="invalid_field", field=field)


def _check_hash(value: bytes, field: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        got = len(value) if isinstance(value, bytes) else type(value).__name__
        raise InvalidInput(f"{field} must be a {HASH_SIZE}-byte hash, got {got}", code="invalid_field", field=field)


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold of the maximal complete subtrees of a range into its RFC 6962 hash."""
    result = hashes[-1]
    for h in reversed(hashes[:-1]):
        result = node_hash(h, result)
    return result


def _fetch(get: NodeGetter, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
    """One batched read; every key must come back as a 32-byte hash."""
    if not keys:
        return {}
    found = get(keys)
    return dict(zip(keys, _checked(found, keys), strict=True))


def _checked(nodes: Mapping[NodeKey, bytes], keys: Sequence[NodeKey]) -> list[bytes]:
    """The hashes of ``keys`` in ``nodes``, each of which must be there and 32 bytes long."""
    out: list[bytes] = []
    for key in keys:
        value = nodes.get(key)
        if value is None:
            raise IntegrityError(f"Merkle node (level={key[0]}, index={key[1]}) is missing from the store")
        if len(value) != HASH_SIZE:
            raise IntegrityError(
                f"Merkle node (level={key[0]}, index={key[1]}) is {len(value)} bytes, expected {HASH_SIZE}"
            )
        out.append(value)
    return out


def _ranges_hashes(ranges: Sequence[tuple[int, int]], get: NodeGetter) -> list[bytes]:
    """The RFC 6962 hash of each non-empty range, from one batched read."""
    per_range = [_one_subtree(start, end) or _range_keys(start, end) for start, end in ranges]
    wanted = list(dict.fromkeys(key for keys in per_range for key in keys))
    nodes = _fetch(get, wanted)
    return [_fold([nodes[key] for key in keys]) for keys in per_range]


# --------------------------------------------------------------------------- tree hashes


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 MTH over all leaf hashes: the O(n) reference, for tests and small trees."""
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(root_from_leaf_hashes(hashes[:k]), root_from_leaf_hashes(hashes[k:]))


def range_keys(start: int, end: int) -> list[NodeKey]:
    """The maximal aligned complete subtrees covering leaves ``[start, end)``, left to right.

    At most ``2·log2(end - start) + 2`` keys; ``range_keys(0, n)`` has one key per set bit of ``n``.
    """
    _check_count(start, "start")
    _check_count(end, "end")
    if start > end:
        raise InvalidInput(f"range start {start} is after end {end}", code="invalid_field", field="start")
    return _range_keys(start, end)


def _one_subtree(start: int, end: int) -> list[NodeKey] | None:
    """``[(level, index)]`` when ``[start, end)`` is exactly one aligned complete subtree (most ranges of a
    proof are), else ``None``."""
    width = end - start
    if width <= 0 or width & (width - 1) or start & (width - 1):
        return None
    level = width.bit_length() - 1
    return [(level, start >> level)]


def _range_keys(start: int, end: int) -> list[NodeKey]:
    """:func:`range_keys` of a range already known to be valid (the ranges of proofs and roots)."""
    keys: list[NodeKey] = []
    while start < end:
        # Largest level at which ``start`` is aligned and the subtree still fits.
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while start + (1 << level) > end:
            level -= 1
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def nodes_for_append(size_before: int, leaf: bytes, get: NodeGetter) -> list[tuple[NodeKey, bytes]]:
    """The nodes to store when the leaf hash ``leaf`` becomes leaf number ``size_before``.

    Returns the leaf itself at ``(0, size_before)`` followed by every subtree it
    completes, bottom-up. Reads the left siblings it needs in at most one ``get`` call.
    """
    _check_count(size_before, "size_before")
    _check_hash(leaf, "leaf")
    completed = (~size_before & (size_before + 1)).bit_length() - 1  # trailing one bits of size_before
    siblings = [(level, (size_before >> level) - 1) for level in range(completed)]
    found = _fetch(get, siblings)
    out: list[tuple[NodeKey, bytes]] = [((0, size_before), leaf)]
    current = leaf
    for level, key in enumerate(siblings):
        current = node_hash(found[key], current)
        out.append(((level + 1, size_before >> (level + 1)), current))
    return out


def root_hash(size: int, get: NodeGetter) -> bytes:
    """The root of the tree of ``size`` leaves, from ``popcount(size)`` stored nodes in one read."""
    _check_count(size, "size")
    if size == 0:
        return EMPTY_ROOT
    return _ranges_hashes([(0, size)], get)[0]


# --------------------------------------------------------------------------- proofs


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges of the RFC 9162 §2.1.4.1 PROOF(m, D[n]) for ``0 < m < n``, in proof order."""
    lo, hi = 0, new_size
    complete_subtree = True  # the b flag of SUBPROOF
    out: list[tuple[int, int]] = []
    while old_size != hi:
        k = _split(hi - lo)
        if old_size <= lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            complete_subtree = False
    if not complete_subtree:
        out.append((lo, hi))
    out.reverse()
    return out


def inclusion_plan(index: int, size: int, *, levels: tuple[int, int | None] = (0, None)) -> list[list[NodeKey]]:
    """For each hash of the RFC 9162 inclusion proof of leaf ``index`` in a tree of ``size``, leaf's sibling
    first, the stored nodes (complete subtrees) whose right fold it is. With ``levels`` ``(low, high)``,
    only the hashes of the levels from ``low`` up to (not including) ``high``: the plans of ``(0, k)`` and
    ``(k, None)`` make the whole plan.

    Walks up the levels: at level ``l`` the sibling of the leaf's ancestor
    covers ``[s·2^l, (s+1)·2^l)`` clipped to the tree; a sibling that starts
    past the tree's end does not exist (RFC 6962 promotes the node), one that
    ends past it is the tree's right edge, hashed from the complete subtrees
    of what it covers. Equal to the ranges of the RFC's recursive definition.
    """
    _check_count(index, "index")
    _check_count(size, "size")
    if index >= size:
        raise InvalidInput(f"leaf index {index} is not in a tree of size {size}", code="invalid_field", field="index")
    plan: list[list[NodeKey]] = []
    level, high = levels
    last = size - 1
    while last >> level and (high is None or level < high):
        sibling = (index >> level) ^ 1
        start = sibling << level
        if start < size:
            end = start + (1 << level)
            plan.append([(level, sibling)] if end <= size else _range_keys(start, size))
        level += 1
    return plan


def proof_from_plan(plan: Sequence[Sequence[NodeKey]], nodes: Mapping[NodeKey, bytes]) -> list[bytes]:
    """The proof hashes of an :func:`inclusion_plan` from its stored nodes (each must be a 32-byte hash)."""
    out: list[bytes] = []
    for keys in plan:
        hashes = _checked(nodes, keys)
        out.append(hashes[0] if len(hashes) == 1 else _fold(hashes))
    return out


def inclusion_proof(index: int, size: int, get: NodeGetter) -> list[bytes]:
    """The RFC 9162 §2.1.3 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    plan = inclusion_plan(index, size)
    wanted = list(dict.fromkeys(key for keys in plan for key in keys))
    return proof_from_plan(plan, get(wanted) if wanted else {})


def consistency_proof(old_size: int, new_size: int, get: NodeGetter) -> list[bytes]:
    """The RFC 9162 §2.1.4 consistency proof from tree size ``old_size`` to ``new_size``.

    Empty when ``old_size == new_size`` or ``old_size == 0``.
    """
    _check_count(old_size, "old_size")
    _check_count(new_size, "new_size")
    if old_size > new_size:
        raise InvalidInput(
            f"old size {old_size} is larger than new size {new_size}", code="invalid_field", field="old_size"
        )
    if old_size in (0, new_size):
        return []
    return _ranges_hashes(_consistency_ranges(old_size, new_size), get)


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ProofError(f"proof[{i}] is not a {HASH_SIZE}-byte hash", code="bad_proof", field=f"proof[{i}]")


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that leaf hash ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root`` (RFC 9162 §2.1.3.2).

    Raises :class:`ProofError` if it is not, or if any argument is out of range.
    """
    if index < 0 or size < 0 or index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}", field="index")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf)} bytes, expected {HASH_SIZE}", field="leaf")
    _check_proof_hashes(proof)
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof is longer than the path of leaf {index} in size {size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof is shorter than the path of leaf {index} in size {size}")
    if r != root:
        raise ProofError(f"inclusion proof of leaf {index} does not lead to the root of size {size}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree ``(new_size, new_root)`` extends ``(old_size, old_root)`` (RFC 9162 §2.1.4.2).

    Equal sizes need an empty proof and equal roots. Size 0 is the empty tree: its root must be
    :data:`EMPTY_ROOT`, the proof must be empty and ``new_root`` must be a well-formed hash.
    Raises :class:`ProofError`.
    """
    if old_size < 0 or new_size < 0:
        raise ProofError(f"tree sizes must be non-negative, got {old_size} and {new_size}", field="old_size")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}: the log shrank", field="old_size")
    if old_size == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        if old_root != EMPTY_ROOT:
            raise ProofError("the root of the empty tree must be SHA-256 of the empty string", field="old_root")
        if len(new_root) != HASH_SIZE or (new_size == 0 and new_root != EMPTY_ROOT):
            raise ProofError(f"new root is not a valid root of a tree of size {new_size}", field="new_root")
        return
    if old_size == new_size:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for tree size {old_size}")
        return
    if not proof:
        raise ProofError(f"empty consistency proof from size {old_size} to {new_size}")
    _check_proof_hashes(proof)
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # old tree is a complete subtree of the new one
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof from {old_size} to {new_size} is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof from {old_size} to {new_size} is too short")
    if fr != old_root:
        raise ProofError(f"consistency proof does not lead to the old root of size {old_size}", field="old_root")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the new root of size {new_size}", field="new_root")


# --------------------------------------------------------------------------- wire form


def encode_proof(proof: Sequence[bytes]) -> list[str]:
    """Standard base64 (with padding) of each hash, as proofs travel in JSON."""
    return [base64.b64encode(h).decode("ascii") for h in proof]


def decode_hash(text: str, field: str = "hash") -> bytes:
    """One base64 hash; :class:`InvalidInput` unless it is strict base64 of exactly 32 bytes."""
    if not isinstance(text, str):
        raise InvalidInput(f"{field} must be a base64 string", code="invalid_field", field=field)
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidInput(f"{field} is not valid base64", code="invalid_field", field=field) from None
    if len(raw) != HASH_SIZE:
        raise InvalidInput(
            f"{field} decodes to {len(raw)} bytes, expected a {HASH_SIZE}-byte hash", code="invalid_field", field=field
        )
    return raw


def decode_proof(items: Sequence[str]) -> list[bytes]:
    """The hashes of a base64 proof; :class:`InvalidInput` names the first bad element."""
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise InvalidInput("proof must be a list of base64 hashes", code="invalid_field", field="proof")
    return [decode_hash(item, f"proof[{i}]") for i, item in enumerate(items)]


# --------------------------------------------------------------------------- in-memory store and frontier


class MemoryNodes:
    """A dict-backed node store with the same storage model as the database.

    ``get`` is a :data:`NodeGetter`. Leaves are appended as leaf hashes.
    """

    def __init__(self) -> None:
        self._nodes: dict[NodeKey, bytes] = {}
        self._size = 0

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return self._size

    def __len__(self) -> int:
        """Number of stored nodes (``2·size - popcount(size)``)."""
        return len(self._nodes)

    def get(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        """The stored nodes among ``keys`` (missing keys are simply absent)."""
        return {key: self._nodes[key] for key in keys if key in self._nodes}

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash and store every subtree it completes."""
        for key, value in nodes_for_append(self._size, leaf, self.get):
            self._nodes[key] = value
        self._size += 1

    def _check_size(self, size: int) -> None:
        if size > self._size:
            raise InvalidInput(f"tree size {size} is beyond the {self._size} leaves stored", field="size")

    def root(self, size: int | None = None) -> bytes:
        """The root of the current tree, or of the earlier tree of ``size`` leaves."""
        size = self._size if size is None else size
        self._check_size(size)
        return root_hash(size, self.get)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        self._check_size(size)
        return inclusion_proof(index, size, self.get)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """Consistency proof from ``old_size`` to ``new_size`` leaves."""
        self._check_size(new_size)
        return consistency_proof(old_size, new_size, self.get)


class CompactRange:
    """The right frontier of a growing tree: O(log n) hashes, enough for its root.

    Holds the hashes of :func:`range_keys` ``(0, size)``; appending a leaf hash merges
    the subtrees it completes, as :func:`nodes_for_append` does in the store.
    """

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []  # one per set bit of size, largest subtree first

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash."""
        _check_hash(leaf_hash, "leaf_hash")
        current = leaf_hash
        size = self._size
        while size & 1:
            current = node_hash(self._hashes.pop(), current)
            size >>= 1
        self._hashes.append(current)
        self._size += 1

    def root(self) -> bytes:
        """The RFC 6962 root of the leaves appended so far."""
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT


__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MemoryNodes",
    "NodeGetter",
    "NodeKey",
    "consistency_proof",
    "decode_hash",
    "decode_proof",
    "encode_proof",
    "inclusion_plan",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "nodes_for_append",
    "proof_from_plan",
    "range_keys",
    "root_from_leaf_hashes",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]
