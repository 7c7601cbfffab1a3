"""Per-client token buckets for the public scan path (SPEC §5.1).

The scan resolver is the one unauthenticated, expensive-ish path (a verdict
carries an inclusion proof), and the one a scraper would hammer. Each client
address gets a bucket of ``burst`` tokens refilled at ``rate_per_minute``;
an empty bucket answers ``429`` with ``Retry-After`` (whole seconds until a
token is back). The client is the TCP peer address: ``X-Forwarded-For`` is
not trusted because any caller can set it; deploy behind a proxy that
rewrites the peer (e.g. uvicorn ``--proxy-headers`` with
``--forwarded-allow-ips``).

Memory is bounded: at most ``max_clients`` buckets are kept; the least
recently seen are dropped first (a dropped client simply starts full again).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import Request

from api.deps import api_settings
from ledger.errors import LimitExceeded


class TokenBuckets:
    """Thread-safe token buckets keyed by client."""

    def __init__(self, rate_per_minute: int, burst: int, *, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_minute <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Take one token for ``client``; return 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait


def _buckets(request: Request) -> TokenBuckets:
    state = request.app.state
    buckets: TokenBuckets | None = getattr(state, "scan_buckets", None)
    if buckets is None:
        limits = api_settings(request).limits
        buckets = TokenBuckets(limits.scan_rate_per_minute, limits.scan_burst)
        state.scan_buckets = buckets
    return buckets


def _take(request: Request) -> float:
    """:meth:`TokenBuckets.take` for the request's client."""
    return _buckets(request).take(request.client.host if request.client is not None else "unknown")


def take_scan_token(request: Request) -> bool:
    """Take a token from the client's bucket: False when it is empty (then :func:`scan_rate_limit` raises)."""
    return _take(request) <= 0


async def scan_rate_limit(request: Request) -> None:
    """FastAPI dependency: raise ``rate_limited`` (429 + Retry-After) when the client's bucket is empty."""
    wait = _take(request)
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        raise LimitExceeded(f"too many scans from this address; retry after {retry_after} s", code="rate_limited",
                            details={"retry_after": retry_after})


__all__ = ["TokenBuckets", "scan_rate_limit", "take_scan_token"]
