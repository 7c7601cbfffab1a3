"""Appends in a child process: group commit off the serving interpreter's lock.

A serving process that commits in a thread of its own shares one interpreter
lock between that thread and its event loop. The committing thread lets go
of the lock at every SQLite step, fsync and pipe write, and each time it
wants it back it may wait a whole switch interval (5 ms) behind the busy
event loop: measured in one process, a group of 20 appends took 6.9 ms
alone and 480 ms beside a busy thread. So under load the receipts waited
on the lock, not on the database.

:class:`AppendProcess` runs the appends in a child (``python -m
ledger.append_process``) that opens the same ledger and does nothing else.
The serving process parses and checks each entry's shape as before, then
sends the entry's canonical bytes and signature down a pipe and awaits the
answer on its event loop (no thread). The child reads whatever has arrived,
appends it as one group with the same rules as
:class:`~ledger.group_commit.GroupCommitter` (all or nothing; a rejected
entry is answered with its error and the rest retried without it), and
answers each entry only after the commit that made it durable: the receipt
as the JSON the API sends, or the :class:`~ledger.errors.LedgerError` that
rejected it, rebuilt in the serving process with the same class, code,
message and field.

Frames, both ways: ``u32 length`` then the frame. Request:
``u64 tag, u32 entry length, canonical entry bytes, signature (64)``.
Answer: ``u64 tag, u8 kind, payload``: kind 0 a new entry's receipt (JSON),
1 a duplicate's receipt, 2 a rejection ``{"class", "code", "message",
"field", "details"}``, 3 a failure of the whole group (the message only).
Once the child has opened the ledger it says so first (tag 0, kind 4, the
log's verifier key), so the serving process knows it is ready and signs
with the same log key as its own ledger.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from ledger import errors
from ledger.canonical import response_json
from ledger.entries import Entry, SignedEntry
from ledger.errors import LedgerError
from ledger.group_commit import DEFAULT_MAX_GROUP, commit_group

_LEN = struct.Struct("<I")
_REQUEST = struct.Struct("<QI")
_ANSWER = struct.Struct("<QB")
SIG_SIZE = 64
NEW, DUPLICATE, REJECTED, FAILED, READY = 0, 1, 2, 3, 4
_PIPE_SIZE = 1 << 20
#: The environment variable that hands the child its ledger settings (JSON).
SETTINGS_ENV = "PARTSLEDGER_APPEND_SETTINGS"

#: The error classes an answer can name; any other :class:`LedgerError` travels as its nearest one.
_ERROR_CLASSES: dict[str, type[LedgerError]] = {
    cls.__name__: cls for cls in (errors.InvalidInput, errors.SignatureError, errors.PolicyRejected,
                                  errors.NotFound, errors.Conflict, errors.ProofError, errors.IntegrityError,
                                  errors.LimitExceeded, LedgerError)
}


class AppendUnavailable(RuntimeError):
    """The append process ended or failed: the entry's fate is unknown only if it was already sent."""


def encode_error(exc: LedgerError) -> bytes:
    name = next(c.__name__ for c in type(exc).__mro__ if c.__name__ in _ERROR_CLASSES)
    return response_json({"class": name, "code": exc.code, "message": exc.message, "field": exc.field,
                  "details": exc.details})


def decode_error(payload: bytes) -> LedgerError:
    data = json.loads(payload)
    cls = _ERROR_CLASSES.get(data.get("class"), LedgerError)
    exc = cls.__new__(cls)
    LedgerError.__init__(exc, str(data["message"]), code=data.get("code"), field=data.get("field"),
                         details=data.get("details") or None)
    if isinstance(exc, errors.IntegrityError):
        exc.seq = exc.details.get("seq")
    return exc


# --- the child ------------------------------------------------------------------------------------------
def _frames(buffer: bytearray) -> list[bytes]:
    """Take every complete frame off the front of ``buffer``."""
    out = []
    start = 0
    while len(buffer) - start >= _LEN.size:
        (length,) = _LEN.unpack_from(buffer, start)
        if len(buffer) - start - _LEN.size < length:
            break
        out.append(bytes(buffer[start + _LEN.size:start + _LEN.size + length]))
        start += _LEN.size + length
    del buffer[:start]
    return out


def _parse_request(frame: bytes) -> tuple[int, SignedEntry]:
    tag, size = _REQUEST.unpack_from(frame)
    canonical = frame[_REQUEST.size:_REQUEST.size + size]
    signature = frame[_REQUEST.size + size:]
    if len(signature) != SIG_SIZE:
        raise ValueError("malformed append request")
    return tag, SignedEntry(entry=Entry(data=json.loads(canonical), canonical=canonical), signature=signature)


def _answer(tag: int, kind: int, payload: bytes) -> bytes:
    return _LEN.pack(_ANSWER.size + len(payload)) + _ANSWER.pack(tag, kind) + payload


def answer_group(ledger: Any, group: Sequence[tuple[int, SignedEntry]]) -> list[bytes]:
    """Append ``group`` with group commit's rules (:func:`~ledger.group_commit.commit_group`); one answer frame
    per entry."""
    from ledger.log import rejected_entry

    outcomes = commit_group(ledger.append_batch, rejected_entry, [signed for _tag, signed in group])
    answers = []
    for (tag, _signed), outcome in zip(group, outcomes, strict=True):
        if isinstance(outcome, LedgerError):
            answers.append(_answer(tag, REJECTED, encode_error(outcome)))
        elif isinstance(outcome, Exception):  # the whole group failed (the database is down, say): say so
            answers.append(_answer(tag, FAILED, f"{type(outcome).__name__}: {outcome}".encode()))
        else:
            answers.append(_answer(tag, DUPLICATE if outcome.duplicate else NEW, response_json(outcome.to_json())))
    return answers


def serve(settings_json: str, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The child: open the ledger, then append whatever has arrived as one group, until the input ends."""
    from ledger.service import LedgerSettings, open_ledger
    from ledger.sigpool import start_shared_pool

    fields = json.loads(settings_json)
    for name in ("data_dir", "log_key_file", "operator_key_file"):
        if fields.get(name) is not None:
            fields[name] = Path(fields[name])
    ledger = open_ledger(LedgerSettings(**fields))
    start_shared_pool()  # groups of 16 entries or more verify their signatures in a helper
    stdout.write(_answer(0, READY, ledger.verifier_key.encode()))
    stdout.flush()
    fd = stdin.fileno()
    buffer = bytearray()
    try:
        while True:
            chunk = os.read(fd, _PIPE_SIZE)  # blocks for the first bytes, then takes all that has arrived
            if not chunk:
                return
            buffer += chunk
            frames = _frames(buffer)
            for start in range(0, len(frames), DEFAULT_MAX_GROUP):
                group = [_parse_request(frame) for frame in frames[start:start + DEFAULT_MAX_GROUP]]
                stdout.write(b"".join(answer_group(ledger, group)))
                stdout.flush()
    finally:
        ledger.db.dispose()


# --- the serving side -----------------------------------------------------------------------------------
class AppendProcess:
    """The serving process's end: start the child, send entries, resolve each caller's future.

    Everything runs on one event loop (the one that called :meth:`start`); no thread is involved.
    If the child ends, the entries waiting for an answer fail with :class:`AppendUnavailable` and the
    next :meth:`append` starts a new child.
    """

    def __init__(self, settings: Any, *, verifier_key: str | None = None) -> None:
        """``settings``: the :class:`~ledger.service.LedgerSettings` the child opens the ledger with;
        ``verifier_key``: the log key it must sign with (that of the serving process's own ledger)."""
        self.verifier_key = verifier_key
        self._settings_json = json.dumps({k: (str(v) if isinstance(v, Path) else v)
                                          for k, v in asdict(settings).items()})
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        # The entries sent to the current child that await its answer, by tag (a new child, a new map).
        self._waiting: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self._next_tag = 0
        self._starting: asyncio.Lock | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def pending(self) -> int:
        """Entries sent to the current child and not answered yet."""
        return sum(1 for waiter in self._waiting.values() if not waiter.done())

    async def start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._proc is not None and self._reader is not None and not self._reader.done():
                return
            # The settings (a database URL may hold a password) go in the environment, which only this
            # user can read, not in the command line, which every local user can.
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ledger.append_process",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                env={**os.environ, SETTINGS_ENV: self._settings_json})
            assert self._proc.stdin is not None and self._proc.stdout is not None
            _widen_pipe(self._proc.stdin)
            try:
                head = await self._proc.stdout.readexactly(_LEN.size)
                hello = await self._proc.stdout.readexactly(_LEN.unpack(head)[0])
            except (asyncio.IncompleteReadError, ConnectionError):
                await self._proc.wait()
                raise AppendUnavailable(
                    "the append process could not open the ledger (see its error output)") from None
            key = hello[_ANSWER.size:].decode()
            if _ANSWER.unpack_from(hello) != (0, READY) or (self.verifier_key and key != self.verifier_key):
                self._proc.kill()
                await self._proc.wait()
                raise AppendUnavailable(f"the append process opened a ledger with another log key ({key})")
            self._waiting = {}
            self._reader = asyncio.ensure_future(self._read_answers(self._proc, self._waiting))

    async def append(self, signed: SignedEntry) -> tuple[bytes, bool]:
        """``(receipt JSON, duplicate)`` once the entry is durable; raises what rejected it."""
        if self._proc is None or self._reader is None or self._reader.done():
            await self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        self._next_tag += 1
        tag = self._next_tag
        answer: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        waiting = self._waiting
        waiting[tag] = answer
        canonical = signed.entry.canonical
        frame = _REQUEST.pack(tag, len(canonical)) + canonical + signed.signature
        try:
            proc.stdin.write(_LEN.pack(len(frame)) + frame)
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            waiting.pop(tag, None)
            raise AppendUnavailable("the append process is not running") from exc
        kind, payload = await answer
        if kind in (NEW, DUPLICATE):
            return payload, kind == DUPLICATE
        if kind == REJECTED:
            raise decode_error(payload)
        raise AppendUnavailable(f"the append failed: {payload.decode(errors='replace')}")

    @staticmethod
    async def _read_answers(proc: asyncio.subprocess.Process,
                            waiting: dict[int, asyncio.Future[tuple[int, bytes]]]) -> None:
        stdout = proc.stdout
        assert stdout is not None
        try:
            while True:
                head = await stdout.readexactly(_LEN.size)
                body = await stdout.readexactly(_LEN.unpack(head)[0])
                tag, kind = _ANSWER.unpack_from(body)
                waiter = waiting.pop(tag, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result((kind, body[_ANSWER.size:]))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:  # the child is gone: nobody will answer the rest
            for waiter in waiting.values():
                if not waiter.done():
                    waiter.set_exception(AppendUnavailable("the append process ended"))
            waiting.clear()

    async def aclose(self) -> None:
        """Close the child's input and wait for it to finish what it was given."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:  # ends at the child's end of output; its outcome is not ours to raise
            await asyncio.wait([self._reader], timeout=5)


def _widen_pipe(stdin: asyncio.StreamWriter) -> None:
    from ledger.sigpool import widen_pipe

    transport = stdin.transport
    pipe = transport.get_extra_info("pipe")
    if pipe is not None:
        widen_pipe(pipe.fileno(), _PIPE_SIZE)


def main() -> None:
    # A Ctrl-C at the terminal reaches the whole process group: the child finishes what it was given and
    # ends when the serving process closes its input, not on the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The answers get the original standard output to themselves; anything else the process might print
    # (a warning, say) goes to standard error instead of into the frames.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(os.environ[SETTINGS_ENV], sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()


__all__ = ["AppendProcess", "AppendUnavailable", "answer_group", "decode_error", "encode_error", "serve"]
