"""Inclusion and consistency proof time at 1,000 and at 1,000,000 records (SPEC §8: O(log n), 1M within 3× 1k).

    python -m benchmarks.proofs --db sqlite   --out benchmarks/proofs_results.json
    python -m benchmarks.proofs --db postgres --out benchmarks/proofs_results.json [--pg-url URL]

Proofs are served by :meth:`ledger.log.Ledger.inclusion_proof` and
:meth:`~ledger.log.Ledger.consistency_proof` (what ``GET /v1/log/proof/...``
calls) and by :func:`ledger.storage.proof_reads.inclusion_proof` (what the
scan path calls), reading the stored Merkle nodes of a real database.

**The trees are seeded, not appended.** Signing, checking and appending a
million real records takes hours at the measured batch rate, so each tree
holds *synthetic* leaf hashes (``SHA-256(0x00 || "synthetic leaf <i>")``):
the node rows are made by :func:`ledger.merkle.nodes_for_append` — the
function every append uses — and inserted into the real ``log_nodes`` table
(``insert(NODES)`` in write transactions, as appends do), then one checkpoint
row for the full size, signed with a fresh log key. ``log_records`` stays
empty: no proof reads it. The proof code under test is the real one,
unchanged, on the same schema and indexes.

Both sizes are open side by side and measured in alternating rounds, so
changing machine load falls on both alike. Every timed proof is verified
afterwards (untimed) against the root: a wrong proof fails the run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from benchmarks.common import base_parser, merge_run
from benchmarks.machine import machine_info
from benchmarks.workload import scratch_database
from ledger import merkle
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.keys import KeyPair
from ledger.log import Ledger
from ledger.note import Signer
from ledger.storage import proof_reads
from ledger.storage.db import Database
from ledger.storage.log_tables import CHECKPOINTS, NODES

REPO = Path(__file__).resolve().parents[1]
ORIGIN = "bench.partsledger/proofs"
TARGET_RATIO_MAX = 3.0
CHUNK = 20_000  # node rows per insert transaction while seeding


def log(message: str) -> None:
    print(f"[proofs {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def synthetic_leaf(index: int) -> bytes:
    return merkle.leaf_hash(b"synthetic leaf %d" % index)


class _Frontier:
    """The newest node of each level: all :func:`merkle.nodes_for_append` ever asks for (left siblings)."""

    def __init__(self) -> None:
        self.by_level: dict[int, tuple[int, bytes]] = {}

    def get(self, keys: Sequence[merkle.NodeKey]) -> Mapping[merkle.NodeKey, bytes]:
        out = {}
        for level, idx in keys:
            held = self.by_level.get(level)
            if held is not None and held[0] == idx:
                out[(level, idx)] = held[1]
        return out

    def add(self, nodes: list[tuple[merkle.NodeKey, bytes]]) -> None:
        for (level, idx), digest in nodes:
            self.by_level[level] = (idx, digest)


def seed_tree(db: Database, size: int, key: KeyPair) -> bytes:
    """Store the Merkle nodes of ``size`` synthetic leaves and a signed checkpoint of that size; return the root."""
    frontier = _Frontier()
    rows: list[dict[str, Any]] = []
    compact = merkle.CompactRange()

    def flush() -> None:
        with db.write() as session:
            session.execute(insert(NODES), rows)
        rows.clear()

    for index in range(size):
        leaf = synthetic_leaf(index)
        nodes = merkle.nodes_for_append(index, leaf, frontier.get)
        frontier.add(nodes)
        rows.extend({"level": k[0], "idx": k[1], "hash": h} for k, h in nodes)
        compact.append(leaf)
        if len(rows) >= CHUNK:
            flush()
        if index and index % 200_000 == 0:
            log(f"  seeded {index:,} leaves")
    if rows:
        flush()
    root = compact.root()
    note = sign_checkpoint(Checkpoint(ORIGIN, size, root), Signer(ORIGIN, key.signing_key))
    with db.write() as session:
        session.execute(insert(CHECKPOINTS).values(size=size, root=root, note=note, created_at="2026-11-29T00:00:00Z"))
    return root


class Tree:
    """One seeded database, its ledger, and the timings taken on it."""

    def __init__(self, db: Database, size: int, root: bytes, key: KeyPair) -> None:
        self.db, self.size, self.root = db, size, root
        self.ledger = Ledger(db, origin=ORIGIN, log_key=key)
        if self.ledger.root_at(size) != root:  # the stored nodes, read back, must give the leaves' root
            raise RuntimeError("the seeded nodes do not give the root of the leaves")
        self.times: dict[str, list[float]] = {"inclusion": [], "inclusion_scan_path": [], "consistency": []}
        self.proof_lengths: dict[str, list[int]] = {name: [] for name in self.times}
        self.checked = 0

    def round(self, rng: random.Random, count: int) -> None:
        clock = time.perf_counter
        for _ in range(count):
            seq = rng.randrange(self.size)
            t0 = clock()
            tree_size, leaf, proof = self.ledger.inclusion_proof(seq, self.size)
            self.times["inclusion"].append(clock() - t0)
            self._check_inclusion(seq, tree_size, leaf, proof, "inclusion")

            seq = rng.randrange(self.size)
            t0 = clock()
            with self.db.read() as session:
                reader = proof_reads.RawReader.of(session)
                leaf, proof = proof_reads.inclusion_proof(reader, seq, self.size)  # no node cache: storage reads
            self.times["inclusion_scan_path"].append(clock() - t0)
            self._check_inclusion(seq, self.size, leaf, proof, "inclusion_scan_path")

            old = rng.randrange(1, self.size)
            t0 = clock()
            old_size, new_size, proof = self.ledger.consistency_proof(old, self.size)
            self.times["consistency"].append(clock() - t0)
            self.proof_lengths["consistency"].append(len(proof))
            if (old_size, new_size) != (old, self.size):
                raise RuntimeError("consistency proof for the wrong sizes")
            merkle.verify_consistency(old, self.size, self.ledger.root_at(old), self.root, proof)
            self.checked += 1

    def _check_inclusion(self, seq: int, tree_size: int, leaf: bytes, proof: list[bytes], name: str) -> None:
        if leaf != synthetic_leaf(seq) or tree_size != self.size:
            raise RuntimeError(f"{name}: wrong leaf or size for seq {seq}")
        merkle.verify_inclusion(leaf, seq, self.size, proof, self.root)
        self.proof_lengths[name].append(len(proof))
        self.checked += 1


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"count": len(samples), "median_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000,
            "mean_ms": statistics.fmean(ordered) * 1000}


@contextmanager
def seeded(kind: str, pg_url: str, workdir: Path, size: int, key: KeyPair) -> Iterator[Tree]:
    sub = workdir / f"tree-{size}"
    sub.mkdir()
    with scratch_database(kind, pg_url, sub) as url:
        db = Database(url)
        try:
            db.migrate()
            started = time.perf_counter()
            root = seed_tree(db, size, key)
            log(f"seeded {size:,} leaves on {kind} in {time.perf_counter() - started:.1f} s")
            yield Tree(db, size, root, key)
        finally:
            db.dispose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    key = KeyPair.generate()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="partsledger-proofs-", dir=args.workdir))
    result["machine"] = machine_info(base, REPO)
    result["method"] = ("synthetic leaf hashes; Merkle node rows made by ledger.merkle.nodes_for_append and "
                        "inserted into log_nodes as appends do, plus one signed checkpoint; no log_records rows. "
                        "Proofs timed through Ledger.inclusion_proof / Ledger.consistency_proof (the API path) and "
                        "ledger.storage.proof_reads.inclusion_proof (the scan path), each in its own read "
                        "transaction, random positions, sizes measured in alternating rounds; every proof verified "
                        "(untimed) against the root.")
    with ExitStack() as stack:
        small = stack.enter_context(seeded(args.db, args.pg_url, base, args.small, key))
        large = stack.enter_context(seeded(args.db, args.pg_url, base, args.large, key))
        for tree in (small, large):  # warm-up, not recorded
            tree.round(rng, 20)
            for samples in tree.times.values():
                samples.clear()
            for lengths in tree.proof_lengths.values():
                lengths.clear()
        result["load_average_before_timing"] = list(os.getloadavg())
        for index in range(args.rounds):
            for tree in (small, large) if index % 2 == 0 else (large, small):
                tree.round(rng, args.per_round)
        result["load_average_after_timing"] = list(os.getloadavg())
        sizes: dict[str, Any] = {}
        for tree in (small, large):
            sizes[str(tree.size)] = {
                name: {**_stats(samples), "mean_proof_hashes": statistics.fmean(tree.proof_lengths[name])}
                for name, samples in tree.times.items()
            } | {"proofs_verified": tree.checked}
        result["sizes"] = sizes
        ratios: dict[str, Any] = {}
        for name in small.times:
            a, b = sizes[str(small.size)][name], sizes[str(large.size)][name]
            ratios[name] = {"median_ratio": b["median_ms"] / a["median_ms"], "p99_ratio": b["p99_ms"] / a["p99_ms"]}
        result["ratio_large_over_small"] = ratios
        result["target_ratio_max"] = TARGET_RATIO_MAX
        result["target_met"] = all(r["median_ratio"] <= TARGET_RATIO_MAX and r["p99_ratio"] <= TARGET_RATIO_MAX
                                   for r in ratios.values())
    shutil.rmtree(base, ignore_errors=True)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=50, help="proofs of each kind per size per round")
    parser.add_argument("--seed", type=int, default=8)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    merge_run(args.out, args.db, result)
    for name, ratio in result["ratio_large_over_small"].items():
        small, large = (result["sizes"][str(s)][name] for s in (args.small, args.large))
        log(f"{args.db} {name}: median {small['median_ms']:.3f} -> {large['median_ms']:.3f} ms "
            f"(x{ratio['median_ratio']:.2f}), p99 {small['p99_ms']:.3f} -> {large['p99_ms']:.3f} ms "
            f"(x{ratio['p99_ratio']:.2f})")
    log(f"target (<= {TARGET_RATIO_MAX}x) met: {result['target_met']}")


if __name__ == "__main__":
    main()
