"""What a client remembers about each log, and the rule for moving forward.

A client that verifies proofs against whatever checkpoint the server hands it
can still be shown a private fork. So every client keeps, per log origin, the
log's verifier key (pinned by the user or trusted on first use) and the newest
signed checkpoint it has ever accepted. A new checkpoint is accepted only if
it is signed by that key and the server proves, by an RFC 9162 consistency
proof, that it extends the remembered one. Otherwise the client raises
:class:`~clients.errors.LogForked` or :class:`~clients.errors.LogShrunk`
carrying both signed notes, and the remembered checkpoint stays where it was.

The state file is small JSON, written atomically (temp file + rename) under an
advisory lock, so several processes sharing it only ever move it forward::

    {"version": 1,
     "logs": {"<origin>": {"verifier_key": "<vkey>", "checkpoint": "<signed note>"}},
     "servers": {"<base url>": "<origin>"}}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.errors import LogForked, LogShrunk
from ledger import merkle
from ledger.checkpoint import Checkpoint, verify_checkpoint
from ledger.errors import IntegrityError, InvalidInput, ProofError
from ledger.note import Verifier, parse_verifier_key

ConsistencyFetcher = Callable[[int, int], list[bytes]]
"""``(old_size, new_size) -> proof``: asks the server for a consistency proof."""


@dataclass(frozen=True)
class LogMemory:
    origin: str
    verifier_key: str
    checkpoint: str | None


class CheckpointStore:
    """Per-origin verifier keys and newest checkpoints; a JSON file, or memory when ``path`` is None."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._memory: dict[str, Any] = {"version": 1, "logs": {}, "servers": {}}

    # file handling --------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write under an exclusive lock; the yielded dict is written back atomically."""
        if self.path is None:
            yield self._memory
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self._write(data)

    def _read(self) -> dict[str, Any]:
        if self.path is None:
            return self._memory
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 1, "logs": {}, "servers": {}}
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"client state file {self.path} is unreadable: {exc}", code="invalid_field") from None
        if not isinstance(data, dict) or data.get("version") != 1:
            raise InvalidInput(f"client state file {self.path} is not a partsledger state file", code="invalid_field")
        data.setdefault("logs", {})
        data.setdefault("servers", {})
        return data

    def _write(self, data: dict[str, Any]) -> None:
        assert self.path is not None
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # queries --------------------------------------------------------------------
    def memory(self, origin: str) -> LogMemory | None:
        log = self._read()["logs"].get(origin)
        if not isinstance(log, dict):
            return None
        return LogMemory(origin, str(log["verifier_key"]), log.get("checkpoint"))

    def origin_of(self, base_url: str) -> str | None:
        origin = self._read()["servers"].get(base_url)
        return str(origin) if origin is not None else None

    # updates --------------------------------------------------------------------
    def trust(self, base_url: str, origin: str, verifier_key: str) -> None:
        """Bind ``base_url`` to ``origin`` and ``origin`` to ``verifier_key`` — refusing to re-bind either."""
        parse_verifier_key(verifier_key)
        with self._locked() as data:
            known_origin = data["servers"].get(base_url)
            if known_origin is not None and known_origin != origin:
                raise IntegrityError(f"{base_url} used to serve log {known_origin!r} and now claims {origin!r}")
            log = data["logs"].get(origin)
            if log is not None and log["verifier_key"] != verifier_key:
                raise IntegrityError(
                    f"log {origin!r} was trusted with key {log['verifier_key']} and now presents {verifier_key}; "
                    "refusing a changed log key", code="bad_checkpoint")
            data["servers"][base_url] = origin
            if log is None:
                data["logs"][origin] = {"verifier_key": verifier_key, "checkpoint": None}

    def _advance(self, origin: str, expected: str | None, note: str, size: int) -> None:
        """Move ``origin`` to ``note`` if nobody moved it meanwhile (else keep the larger, re-checked later)."""
        with self._locked() as data:
            log = data["logs"][origin]
            current = log.get("checkpoint")
            if current != expected and current is not None:
                held = int(current.split("\n")[1])
                if held >= size:
                    return
            log["checkpoint"] = note


class Witness:
    """Accepts checkpoints of one log only when they extend what was seen before."""

    def __init__(self, store: CheckpointStore, origin: str, verifier: Verifier) -> None:
        self.store = store
        self.origin = origin
        self.verifier = verifier

    def verify(self, note: str) -> Checkpoint:
        """Check the signature and origin of ``note`` (no history check)."""
        return verify_checkpoint(note, self.verifier, origin=self.origin)

    def remembered(self) -> tuple[str, Checkpoint] | None:
        memory = self.store.memory(self.origin)
        if memory is None or memory.checkpoint is None:
            return None
        return memory.checkpoint, self.verify(memory.checkpoint)

    def observe(self, note: str, consistency: ConsistencyFetcher, *, head: bool) -> Checkpoint:
        """Accept ``note`` or raise; advance the remembered checkpoint only if it grew consistently.

        ``head`` marks the log's claimed latest checkpoint: smaller than what was seen is a
        shrunk log. A smaller checkpoint from a receipt or proof is fine if it is a proven prefix.
        """
        cp = self.verify(note)
        held = self.remembered()
        if held is None:
            self.store._advance(self.origin, None, note, cp.size)
            return cp
        old_note, old = held
        if cp.size == old.size:
            if cp.root != old.root:
                raise LogForked(f"log {self.origin!r} signed two different roots for size {cp.size}",
                                remembered=old_note, offered=note)
            return cp
        if cp.size < old.size:
            if head:
                raise LogShrunk(f"log {self.origin!r} now claims {cp.size} records but signed {old.size} earlier",
                                remembered=old_note, offered=note)
            self._prove(cp, old, note, old_note, consistency, new_is_offered=False)
            return cp
        self._prove(old, cp, old_note, note, consistency, new_is_offered=True)
        self.store._advance(self.origin, old_note, note, cp.size)
        return cp

    def _prove(self, old: Checkpoint, new: Checkpoint, old_note: str, new_note: str,
               consistency: ConsistencyFetcher, *, new_is_offered: bool) -> None:
        proof = consistency(old.size, new.size)
        try:
            merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
        except ProofError as exc:
            remembered, offered = (old_note, new_note) if new_is_offered else (new_note, old_note)
            raise LogForked(f"log {self.origin!r} cannot prove that size {new.size} extends size {old.size}: "
                            f"{exc.message}", remembered=remembered, offered=offered,
                            proof=merkle.encode_proof(proof)) from None


__all__ = ["CheckpointStore", "ConsistencyFetcher", "LogMemory", "Witness"]
