"""A local journal of signed entries, so that an interrupted batch job can be finished exactly once.

``commission`` (and any other bulk writer) first signs every entry and writes
them all to a journal file — atomically, before the first byte goes to the
server. Sending then walks the journal in batches. If the process dies, the
re-run finds the same journal (named by a hash of the job's inputs) and sends
the *same signed entries* again; the ledger's entry-id deduplication answers
already-stored ones with their original receipts and appends nothing twice.
A ``.done`` file remembers how far sending got, only to skip work: it is an
optimisation, never needed for correctness.

Journal format (JSON lines)::

    {"journal": "partsledger-journal-v1", "job": {...}, "count": N}
    {"entry": {...}, "sig": "..."}            one signed entry per line
    ...
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.sdk import PartsLedger, VerifiedReceipt
from ledger.entries import SignedEntry, parse_signed_entry
from ledger.errors import InvalidInput

FORMAT = "partsledger-journal-v1"


@dataclass(frozen=True)
class SendResult:
    sent: int
    appended: int
    duplicates: int
    receipts: list[VerifiedReceipt]


class Journal:
    """Signed entries on disk, written once, sent until all are in the log."""

    def __init__(self, path: Path, job: dict[str, Any], entries: list[SignedEntry]) -> None:
        self.path = path
        self.job = job
        self.entries = entries

    @property
    def done_path(self) -> Path:
        return self.path.with_name(self.path.name + ".done")

    @classmethod
    def create(cls, path: Path, job: dict[str, Any], entries: Sequence[SignedEntry]) -> Journal:
        """Write the whole journal atomically (temp file, fsync, rename); refuse to overwrite one."""
        if path.exists():
            raise InvalidInput(f"journal {path} already exists", code="conflict")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".journal-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps({"journal": FORMAT, "job": job, "count": len(entries)}) + "\n")
                for item in entries:
                    handle.write(json.dumps(item.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return cls(path, dict(job), list(entries))

    @classmethod
    def load(cls, path: Path) -> Journal:
        lines = path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0])
            if header.get("journal") != FORMAT or header.get("count") != len(lines) - 1:
                raise ValueError("bad header or truncated")
            entries = [parse_signed_entry(json.loads(line)) for line in lines[1:]]
        except (ValueError, IndexError, InvalidInput) as exc:
            raise InvalidInput(f"journal {path} is damaged ({exc}); delete it to start over",
                               code="invalid_field") from None
        return cls(path, header["job"], entries)

    def done(self) -> int:
        try:
            return max(0, min(int(self.done_path.read_text().strip() or 0), len(self.entries)))
        except (FileNotFoundError, ValueError):
            return 0

    def _mark(self, count: int) -> None:
        tmp = self.done_path.with_name(self.done_path.name + ".tmp")
        tmp.write_text(str(count))
        os.replace(tmp, self.done_path)

    def send(self, client: PartsLedger, *, batch: int = 200,
             progress: Callable[[int, int], None] | None = None) -> SendResult:
        """Send every entry not known to be done, in batches; each receipt is verified by the SDK.

        A journal already sent completely is sent again: the server answers with the original receipts
        and appends nothing, so a re-run confirms (with verified receipts) that every entry is in the log.
        """
        start = self.done()
        if start == len(self.entries):
            start = 0
        receipts: list[VerifiedReceipt] = []
        for offset in range(start, len(self.entries), batch):
            chunk = self.entries[offset:offset + batch]
            receipts.extend(client.append_batch(chunk))
            self._mark(offset + len(chunk))
            if progress:
                progress(offset + len(chunk), len(self.entries))
        duplicates = sum(1 for r in receipts if r.duplicate)
        return SendResult(sent=len(receipts), appended=len(receipts) - duplicates, duplicates=duplicates,
                          receipts=receipts)


__all__ = ["FORMAT", "Journal", "SendResult"]
