"""Ed25519 entry signatures verified in helper processes, answered in submission order.

PyNaCl releases the GIL inside ``crypto_sign_open``, but a thread that has to
take the GIL back after every signature waits behind a busy main thread for
up to the interpreter's switch interval, so verifier *threads* run slower than
one thread alone. Whole audits therefore hand batches of
``(public key, message, signature)`` to a few worker processes over pipes
(``python -m ledger.sigpool``: no fork of the caller, nothing but PyNaCl
imported) while the caller goes on parsing and chaining.

Large append batches (:data:`PARALLEL_MIN_BATCH` entries or more) do the
same with one shared helper (:func:`shared_pool`): the appending thread finds
each entry's key, queues the signature and runs the entry's policy while the
helper verifies, and drains the helper before it commits. Set
``PARTSLEDGER_VERIFY_HELPERS=0`` to verify in the appending thread instead.

Every signature is tagged with the caller's sequence number. :meth:`add`
returns the tag of a failure already known (a batch answered earlier), and
:meth:`drain` waits for everything and returns the first failing tag in
submission order, so the caller can still name the *first* bad record: it
calls :meth:`drain` before raising any error of its own and prefers an
earlier signature failure.

Wire format, per batch: ``u32 count`` then per item ``public key (32)``,
``signature (64)``, ``u32 length``, ``message``; the answer is ``u32 index``
of the first failing item, or ``0xFFFFFFFF``.
"""

from __future__ import annotations

import atexit
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

_U32 = struct.Struct("<I")
_ITEM = struct.Struct("<32s64sI")
_ALL_GOOD = 0xFFFFFFFF


def verify_items(items: list[tuple[bytes, bytes, bytes]]) -> int:
    """Index of the first ``(public key, message, signature)`` that does not verify, or -1."""
    import nacl.exceptions
    import nacl.signing

    keys: dict[bytes, nacl.signing.VerifyKey] = {}
    for index, (public, message, signature) in enumerate(items):
        key = keys.get(public)
        if key is None:
            try:
                key = keys[public] = nacl.signing.VerifyKey(public)
            except (nacl.exceptions.ValueError, nacl.exceptions.TypeError, ValueError, TypeError):
                return index
        try:
            key.verify(message, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
            return index
    return -1


_F_SETPIPE_SZ = 1031  # Linux fcntl


def widen_pipe(fd: int, size: int = 1 << 20) -> None:
    """Let a pipe hold ``size`` bytes where the system allows it (Linux; 64 KiB by default): a writer that
    runs ahead of its helper by a few batches then never blocks on the write."""
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
    except (ImportError, OSError):
        pass


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size)
    if len(data) != size:
        return None
    return data


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker: answer batches until the input closes."""
    while True:
        head = _read_exact(stdin, 4)
        if head is None:
            return
        (count,) = _U32.unpack(head)
        items = []
        for _ in range(count):
            raw = _read_exact(stdin, _ITEM.size)
            if raw is None:
                return
            public, signature, length = _ITEM.unpack(raw)
            message = _read_exact(stdin, length)
            if message is None:
                return
            items.append((public, message, signature))
        bad = verify_items(items)
        stdout.write(_U32.pack(_ALL_GOOD if bad < 0 else bad))
        stdout.flush()


#: Only ledgers of at least this many records are worth starting helper processes for.
PARALLEL_MIN_RECORDS = 20_000


def default_workers(records: int) -> int:
    """Helper processes for ``records`` signatures: one fewer than the CPUs, if that many are idle.

    None for small jobs, and none on a machine whose CPUs other work keeps busy (:func:`busy_cpus`):
    helpers then only take turns with this process and add the cost of the pipes.
    """
    cpus = os.cpu_count() or 1
    if records < PARALLEL_MIN_RECORDS or cpus < 2:
        return 0
    idle = cpus - busy_cpus()
    return max(0, min(cpus - 1, int(idle + 0.25)))  # a CPU three-quarters idle is worth a helper


def busy_cpus(sample_seconds: float = 0.1) -> float:
    """How many CPUs other work keeps busy now: on Linux the busy share of every CPU's time over a short sample
    (``/proc/stat``; this process sleeps meanwhile), elsewhere the one-minute load average. The load average
    also counts work that has just ended (building the very log about to be checked, say)."""
    try:
        before = _cpu_ticks()
        time.sleep(sample_seconds)
        after = _cpu_ticks()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    total = after[0] - before[0]
    if total <= 0:
        return os.getloadavg()[0]
    return (os.cpu_count() or 1) * (1.0 - (after[1] - before[1]) / total)


def _cpu_ticks() -> tuple[int, int]:
    """``(all, idle)`` CPU time of every CPU since boot, in ticks (idle includes waiting for I/O)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]  # user … steal; guest is within user
    return sum(fields), fields[3] + fields[4]


class SignaturePool:
    """Verifies tagged signatures in ``workers`` processes, at most ``depth`` batches in flight per worker."""

    def __init__(self, workers: int | None = None, *, batch: int = 256, depth: int = 4,
                 first_batch: int | None = None) -> None:
        """``first_batch``: send the first signatures after a run of this many (doubling up to ``batch`` with
        each send, and starting over at :meth:`reset`), so a short run is already being verified while
        its caller goes on, and a long one is sent in large, cheap batches."""
        count = workers if workers is not None else max(1, (os.cpu_count() or 1) - 1)
        self.batch = batch
        self.first_batch = min(first_batch or batch, batch)
        self._chunk = self.first_batch
        self.depth = depth
        self._procs = [subprocess.Popen([sys.executable, "-m", "ledger.sigpool"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(count)]
        for proc in self._procs:
            assert proc.stdin is not None
            widen_pipe(proc.stdin.fileno())
        self._next = 0
        self._items: list[tuple[int, bytes, bytes, bytes]] = []
        self._inflight: deque[tuple[int, list[int]]] = deque()  # (worker, tags) in submission order
        self._failed: int | None = None

    @property
    def failed(self) -> int | None:
        """The first failing tag found so far (answers already read)."""
        return self._failed

    def add(self, tag: int, public: bytes, message: bytes, signature: bytes) -> int | None:
        """Queue one signature; return the first failing tag known so far (or ``None``)."""
        self._items.append((tag, public, message, signature))
        if len(self._items) >= self._chunk:
            self._send()
        return self._failed

    def flush(self) -> None:
        """Send the queued signatures now, without waiting for any answer."""
        if self._items:
            self._send()

    def drain(self) -> int | None:
        """Wait for every queued signature; the first failing tag in submission order, or ``None``."""
        if self._items:
            self._send()
        while self._inflight:
            self._receive()
        return self._failed

    def reset(self) -> None:
        """Wait for (and forget) everything in flight, ready for the next, unrelated set of signatures."""
        self._items = []
        while self._inflight:
            self._receive()
        self._failed = None
        self._chunk = self.first_batch

    def close(self) -> None:
        for proc in self._procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs = []

    def __enter__(self) -> SignaturePool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _send(self) -> None:
        while len(self._inflight) >= self.depth * len(self._procs):
            self._receive()
        worker = self._next
        self._next = (self._next + 1) % len(self._procs)
        parts = [_U32.pack(len(self._items))]
        for _tag, public, message, signature in self._items:
            if len(public) != 32 or len(signature) != 64:
                parts.append(_ITEM.pack(bytes(32), bytes(64), 0))  # never verifies
            else:
                parts.append(_ITEM.pack(public, signature, len(message)))
                parts.append(message)
        stdin = self._procs[worker].stdin
        assert stdin is not None
        stdin.write(b"".join(parts))
        stdin.flush()
        self._inflight.append((worker, [tag for tag, *_ in self._items]))
        self._items = []
        self._chunk = min(self._chunk * 2, self.batch)

    def _receive(self) -> None:
        worker, tags = self._inflight.popleft()
        stdout = self._procs[worker].stdout
        assert stdout is not None
        answer = _read_exact(stdout, 4)
        if answer is None:
            raise RuntimeError("a signature worker process ended unexpectedly")
        (index,) = _U32.unpack(answer)
        if index != _ALL_GOOD and self._failed is None:
            self._failed = tags[index]


#: Batches of at least this many entries verify their signatures in the shared helper process.
PARALLEL_MIN_BATCH = 16

_shared: SignaturePool | None = None
_shared_lock = threading.Lock()


def _close_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.close()
        _shared = None


def batch_helpers_enabled() -> bool:
    """Whether batch appends may use a helper process: a second CPU, and not turned off by
    ``PARTSLEDGER_VERIFY_HELPERS=0``."""
    return (os.cpu_count() or 1) >= 2 and os.environ.get("PARTSLEDGER_VERIFY_HELPERS", "1") != "0"


def start_shared_pool() -> bool:
    """Start this process's batch helper now rather than on the first large batch (a server does it at
    startup, so that batch does not wait for the helper to start); whether one is running."""
    if not batch_helpers_enabled() or not _shared_lock.acquire(blocking=False):
        return _shared is not None
    try:
        return _ensure_shared() is not None
    finally:
        _shared_lock.release()


def _ensure_shared() -> SignaturePool | None:
    """The shared pool, started if need be (the caller holds ``_shared_lock``); ``None`` if it cannot start."""
    global _shared
    if _shared is None:
        try:
            _shared = SignaturePool(1, batch=64, depth=32, first_batch=16)
        except OSError:
            return None
        atexit.register(_close_shared)
    return _shared


@contextmanager
def shared_pool() -> Iterator[SignaturePool | None]:
    """This process's one-helper pool for batch appends, or ``None`` when it is busy (another batch has
    it: that batch verifies in its own thread instead), turned off or cannot start.

    Whatever the borrower leaves queued is drained before the next borrower gets the pool, so no answer
    ever reaches the wrong batch; a pool whose helper died is dropped and started afresh next time.
    """
    if not batch_helpers_enabled() or not _shared_lock.acquire(blocking=False):
        yield None
        return
    try:
        pool = _ensure_shared()
        if pool is None:
            yield None
            return
        try:
            yield pool
        finally:
            try:
                pool.reset()
            except (OSError, RuntimeError):
                _close_shared()
    finally:
        _shared_lock.release()


if __name__ == "__main__":
    # A Ctrl-C at the terminal reaches the whole process group; this helper ends when its caller closes
    # its input, not on the signal (and without a traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)


__all__ = ["PARALLEL_MIN_BATCH", "PARALLEL_MIN_RECORDS", "SignaturePool", "batch_helpers_enabled", "busy_cpus",
           "default_workers", "serve", "shared_pool", "start_shared_pool", "verify_items", "widen_pipe"]
