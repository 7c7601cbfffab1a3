"""API settings: the ledger's settings plus transport limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.service import LedgerSettings


@dataclass(frozen=True)
class ApiLimits:
    max_body_bytes: int = 4 * 1024 * 1024
    max_batch: int = 1000
    max_page: int = 1000
    scan_rate_per_minute: int = 600  # per client address on the public scan path
    scan_burst: int = 60


@dataclass(frozen=True)
class ApiSettings:
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    limits: ApiLimits = field(default_factory=ApiLimits)
    resolver_base: str | None = None  # e.g. https://id.example.com; defaults to the request's own base URL
    #: Single appends (``POST /v1/entries``) go to a child process that opens the same ledger and commits
    #: them in groups (:mod:`ledger.append_process`), off this process's interpreter lock. ``partsledger
    #: serve`` turns it on; off, they are group-committed by a thread of this process.
    append_process: bool = False
    #: Plain JSON scans are answered before the framework's routing (:class:`api.routes.scan.ScanFastLane`);
    #: off, the router answers them too (the same bytes: tests compare the two).
    scan_fast_lane: bool = True
