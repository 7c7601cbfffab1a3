"""Group commit: concurrent single appends share one durable transaction.

Every append must be durable before its receipt is handed out, and a durable
commit costs an fsync (milliseconds) however little the transaction holds.
When many threads append at once — the HTTP API runs each request in a worker
thread — giving each entry its own commit caps the log at one fsync per entry.

So appends queue up here. The first caller to find nobody leading becomes the
*leader*: it takes every entry waiting at that moment (up to ``max_group``),
appends them with ``append_batch`` in one transaction (one commit, one
checkpoint) and hands each caller its result. If more entries arrived in the
meantime it passes the lead to the oldest waiting caller and returns with its
own receipt, so no caller works for others for longer than one group.

Each caller gets exactly what a lone append would give it: a receipt only after
the commit that made its entry durable (the receipt's checkpoint is the
group's, which includes the entry), or the error that rejected its entry. A
batch is all or nothing, so when one entry is rejected the leader answers that
caller with its error and retries the rest of the group without it; one bad
entry never sinks the others. A lone caller's group is just its own entry.

Callers that wait on an event loop rather than in a thread of their own (the
HTTP API) use :meth:`GroupCommitter.submit_future` instead: their entries queue
for a committer thread that takes whatever is waiting, commits it as one group
under the same rules and resolves each caller's future. No thread per request
is parked, and none is handed the lead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from ledger.errors import LedgerError

Item = TypeVar("Item")
Result = TypeVar("Result")


class Rejected(Exception):
    """Raised by the batch function: the item at ``index`` was rejected with ``error``; nothing was stored."""

    def __init__(self, index: int, error: LedgerError) -> None:
        super().__init__(error.message)
        self.index = index
        self.error = error


#: Entries appended in one transaction at most, by default.
DEFAULT_MAX_GROUP = 256


def commit_group(batch: Callable[[Sequence[Item]], list[Result]],
                 translate: Callable[[BaseException], Rejected | None],
                 items: Sequence[Item]) -> list[Result | Exception]:
    """Commit ``items`` with ``batch`` under group commit's rules; one outcome per item, in order.

    A batch is all or nothing: when ``translate`` names one rejected item, that item's outcome is its
    error and the rest are retried without it. An exception that names no item fails every item still
    waiting (its outcome is that exception); one that is not an :class:`Exception` propagates.
    """
    outcomes: list[Result | Exception | None] = [None] * len(items)
    remaining = list(range(len(items)))
    while remaining:
        try:
            results = batch([items[i] for i in remaining])
        except Exception as exc:
            rejected = translate(exc)
            if rejected is not None and 0 <= rejected.index < len(remaining):
                outcomes[remaining.pop(rejected.index)] = rejected.error
                continue
            for i in remaining:
                outcomes[i] = exc
            break
        for i, result in zip(remaining, results, strict=True):
            outcomes[i] = result
        break
    return outcomes  # type: ignore[return-value]  # every slot is filled above


class _Waiter(Generic[Item, Result]):
    __slots__ = ("error", "event", "item", "resolved", "result")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.resolved = False
        # Set when the waiter is resolved, or when it is made leader (then still unresolved).
        self.event = threading.Event()

    def succeed(self, result: Result) -> None:
        self.result = result
        self.resolved = True
        self.event.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.resolved = True
        self.event.set()


class _FutureWaiter(Generic[Item, Result]):
    """A queued item whose caller waits on a future (an event loop), not in a thread of its own."""

    __slots__ = ("future", "item", "resolved")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.future: Future[Result] = Future()
        self.resolved = False

    def succeed(self, result: Result) -> None:
        self.resolved = True
        self.future.set_result(result)

    def fail(self, error: BaseException) -> None:
        self.resolved = True
        self.future.set_exception(error)


class GroupCommitter(Generic[Item, Result]):
    """Combines concurrent ``submit`` calls into calls of ``batch`` (which must be all-or-nothing)."""

    def __init__(self, batch: Callable[[Sequence[Item]], list[Result]],
                 translate: Callable[[BaseException], Rejected | None], *, max_group: int = DEFAULT_MAX_GROUP,
                 idle_seconds: float = 5.0) -> None:
        """``translate`` maps an exception raised by ``batch`` to :class:`Rejected` when it names
        one rejected item (the rest may be retried), or ``None`` when the whole group failed.
        ``idle_seconds``: how long the committer thread of :meth:`submit_future` waits for work before it ends."""
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        self._batch = batch
        self._translate = translate
        self.max_group = max_group
        self._lock = threading.Lock()
        self._pending: list[_Waiter[Item, Result]] = []
        self._leading = False
        self.groups = 0  # how many batches were committed (for tests and metrics)

        # submit_future: a committer thread of its own, started on demand, ending when idle.
        self._queued: list[_FutureWaiter[Item, Result]] = []
        self._queue_ready = threading.Condition()
        self._committer_running = False
        self.idle_seconds = idle_seconds

    def submit_future(self, item: Item) -> Future[Result]:
        """Queue ``item`` and return at once; the future gets its result once durable, or what rejected it.

        For callers that must not block a thread while they wait (an event loop): these items are
        committed in groups by a committer thread of this object, with the same all-or-nothing and
        one-rejection-fails-alone rules as :meth:`submit`.
        """
        waiter: _FutureWaiter[Item, Result] = _FutureWaiter(item)
        with self._queue_ready:
            self._queued.append(waiter)
            if self._committer_running:
                self._queue_ready.notify()
            else:
                self._committer_running = True
                threading.Thread(target=self._committer, name="group-commit", daemon=True).start()
        return waiter.future

    @property
    def committer_running(self) -> bool:
        with self._queue_ready:
            return self._committer_running

    def _committer(self) -> None:
        try:
            while True:
                with self._queue_ready:
                    if not self._queued:
                        self._queue_ready.wait(self.idle_seconds)
                    if not self._queued:
                        self._committer_running = False
                        return
                    group = self._queued[:self.max_group]
                    del self._queued[:self.max_group]
                self._commit(group)
        except BaseException:  # the next submit_future starts another committer
            with self._queue_ready:
                self._committer_running = False
            raise

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def submit(self, item: Item) -> Result:
        """Append ``item``; returns its result once durable, or raises what rejected it."""
        me: _Waiter[Item, Result] = _Waiter(item)
        with self._lock:
            self._pending.append(me)
            if not self._leading:
                self._leading = True
                me.event.set()  # lead at once
        me.event.wait()
        if not me.resolved:  # made leader; our own entry is first in line
            self._lead()
        assert me.resolved
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[return-value]

    def _lead(self) -> None:
        try:
            with self._lock:
                group = self._pending[:self.max_group]
                del self._pending[:self.max_group]
            self._commit(group)
        finally:
            with self._lock:
                if self._pending:
                    self._pending[0].event.set()  # pass the lead on
                else:
                    self._leading = False

    def _commit(self, group: Sequence[_Waiter[Item, Result] | _FutureWaiter[Item, Result]]) -> None:
        try:
            outcomes = commit_group(self._batch, self._translate, [w.item for w in group])
        except BaseException as exc:  # not an Exception (an interrupt): every caller sees it too
            for waiter in group:
                if not waiter.resolved:
                    waiter.fail(exc)
            raise
        if any(not isinstance(outcome, Exception) for outcome in outcomes):
            self.groups += 1
        for waiter, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Exception):
                waiter.fail(outcome)
            else:
                waiter.succeed(outcome)


__all__ = ["DEFAULT_MAX_GROUP", "GroupCommitter", "Rejected", "commit_group"]
