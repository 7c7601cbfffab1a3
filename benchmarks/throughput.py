"""Raw Ed25519 verification rate beside single and batch append rates.

The raw rate is the ceiling for a single core: an append must at least verify
one signature. With the batch's signature helper turned off, ``batch append/s ÷
raw verify/s`` says how much of a core's time the rest of the append (canonical
bytes, policy, SQL, Merkle nodes, checkpoint, commit) costs; with it on (as a
server runs), a helper process verifies on a second core while the appending
thread does the rest, and the ratio says what that machine delivers.
Everything is prepared outside the timed sections.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import nacl.signing

from benchmarks.workload import BenchLog
from ledger.entries import SignedEntry
from ledger.keys import signed_message


def _messages(entries: list[SignedEntry]) -> list[tuple[bytes, bytes]]:
    """The exact ``(message, signature)`` pairs the ledger verifies for ``entries``."""
    return [(signed_message("entry", e.entry.canonical), e.signature) for e in entries]


def raw_verify(entries: list[SignedEntry], public_key: bytes, rounds: int = 3) -> dict[str, Any]:
    """PyNaCl ``VerifyKey.verify`` over the exact messages the ledger verifies, single core."""
    key = nacl.signing.VerifyKey(public_key)
    messages = _messages(entries)
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for message, signature in messages:
            key.verify(message, signature)
        rates.append(len(messages) / (time.perf_counter() - started))
    return {"signatures": len(messages), "rounds": rounds, "verifies_per_s": statistics.median(rates),
            "verifies_per_s_each_round": rates,
            "mean_message_bytes": statistics.mean(len(m) for m, _ in messages)}


def single_append(log: BenchLog, entries: list[SignedEntry], max_seconds: float) -> dict[str, Any]:
    """``Ledger.append`` in a loop: each entry its own durable transaction with its own checkpoint."""
    done = 0
    started = time.perf_counter()
    for signed in entries:
        receipt = log.ledger.append(signed)
        assert not receipt.duplicate
        done += 1
        if time.perf_counter() - started > max_seconds:
            break
    elapsed = time.perf_counter() - started
    return {"appends": done, "seconds": elapsed, "appends_per_s": done / elapsed}


def batch_append(log: BenchLog, entries: list[SignedEntry], batch_size: int, max_seconds: float,
                 verify_set: list[SignedEntry] | None = None) -> dict[str, Any]:
    """``Ledger.append_batch`` of ``batch_size`` pre-signed entries per transaction (one checkpoint each).

    With ``verify_set``, each batch is paired with a raw verify of ``batch_size`` signatures of
    ``verify_set`` (the bench signer's entries) timed just before it: on a shared machine whose speed
    drifts from minute to minute, each pair's ratio compares the two under the same conditions
    (``paired_ratios``; their median is ``paired_ratio_median``).
    """
    done = 0
    per_batch = []
    pairs: list[float] = []
    key = nacl.signing.VerifyKey(log.signer.public_key)
    messages = _messages(verify_set or [])
    started = time.perf_counter()
    for number, start in enumerate(range(0, len(entries) - batch_size + 1, batch_size)):
        raw_rate = None
        if messages:
            chunk = [messages[(number * batch_size + i) % len(messages)] for i in range(batch_size)]
            t0 = time.perf_counter()
            for message, signature in chunk:
                key.verify(message, signature)
            raw_rate = batch_size / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        receipts = log.ledger.append_batch(entries[start:start + batch_size])
        elapsed = time.perf_counter() - t0
        per_batch.append(elapsed)
        if raw_rate is not None:
            pairs.append((batch_size / elapsed) / raw_rate)
        assert len(receipts) == batch_size and not any(r.duplicate for r in receipts)
        done += batch_size
        if time.perf_counter() - started > max_seconds:
            break
    elapsed = sum(per_batch)
    out: dict[str, Any] = {"batch_size": batch_size, "batches": len(per_batch), "appends": done, "seconds": elapsed,
                           "appends_per_s": done / elapsed, "seconds_per_batch_median": statistics.median(per_batch)}
    if pairs:
        out["paired_ratios"] = pairs
        out["paired_ratio_median"] = statistics.median(pairs)
    return out
