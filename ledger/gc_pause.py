"""Pause the cyclic garbage collector while a batch is appended.

A batch of a thousand entries creates tens of thousands of short-lived
objects (rows, dicts, hashes), and CPython's collector runs a young-generation
pass every 700 allocations and, as survivors pile up, full passes over every
object of the process: in the batch benchmark that was a third of the time.
Nothing a batch allocates forms reference cycles that need collecting before
it ends, so :func:`gc_paused` turns the collector off for the duration
(reference counting still frees everything as usual) and back on afterwards.
Nested and concurrent pauses are counted: the collector runs again when the
last one ends, and only if it was running before the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


__all__ = ["gc_paused"]
