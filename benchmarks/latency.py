"""Open-loop receipt latency against a server on 127.0.0.1.

Requests are *scheduled* at a fixed offered rate (request ``i`` at
``t0 + i/rate``) whatever the server does; each latency is measured from the
scheduled time to the complete response. A slow server therefore shows up as
growing latency instead of silently lowering the offered rate (no coordinated
omission). The lag between scheduled and actual send is reported too, to
show whether the client itself kept up (it includes waiting for a free
connection of the fixed keep-alive pool, i.e. the server being behind).
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(app: str, *extra: str, ready_path: str) -> Iterator[str]:
    """Start ``benchmarks.serve --app app`` in a subprocess on a free loopback port; stop it afterwards."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.serve", "--app", app, "--port", str(port), *extra],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"{app} server did not start: {err[-2000:]}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class _Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for this benchmark.

    A minimal client on asyncio streams costs a few tens of microseconds per
    request, so at 1,000 requests/s the load generator is not what is measured
    (a general-purpose async client with a thousand pooled connections is).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host.encode()

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + self.host
                + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding":
                raise ConnectionError("chunked responses are not expected here")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def _open_loop(base: str, path: str, bodies: Sequence[bytes], rate: float, timeout: float,
                     connections: int) -> list[tuple[float, float, int | str]]:
    host, port = base.removeprefix("http://").split(":")
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    opened = [await _Connection.open(host, int(port)) for _ in range(connections)]
    for conn in opened:
        pool.put_nowait(conn)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2

    async def one(i: int, body: bytes) -> tuple[float, float, int | str]:
        scheduled = t0 + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        deadline = scheduled + timeout  # the timeout runs from the scheduled time, like the latency
        try:  # waiting for a free connection counts as latency, as it should
            conn = await asyncio.wait_for(pool.get(), max(0.001, deadline - loop.time()))
        except TimeoutError:
            return loop.time() - scheduled, loop.time() - scheduled, "TimeoutError"
        lag = loop.time() - scheduled
        status: int | str
        try:
            status, payload = await asyncio.wait_for(conn.post(path, body), max(0.001, deadline - loop.time()))
            if status in (200, 201):
                data = json.loads(payload)
                if not ("fields" in data or ("checkpoint" in data and "inclusion_proof" in data)):
                    status = "not-a-receipt"
            pool.put_nowait(conn)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            status = type(exc).__name__
            conn.close()  # its state is unknown: replace it
            with suppress(OSError):
                pool.put_nowait(await _Connection.open(host, int(port)))
        return loop.time() - scheduled, lag, status

    try:
        return await asyncio.gather(*(one(i, body) for i, body in enumerate(bodies)))
    finally:
        while not pool.empty():
            pool.get_nowait().close()


def _summarise(results: Sequence[tuple[float, float, int | str]], timeout: float) -> dict[str, Any]:
    """Percentiles over *all* requests: a failed or timed-out request counts as slower than any
    answered one, so a percentile that falls among them is reported as ``None`` ("> timeout")
    rather than silently computed over the survivors only."""
    everything = [lat * 1000 if status in (200, 201) else float("inf") for lat, _lag, status in results]
    ok = [v for v in everything if v != float("inf")]
    errors: dict[str, int] = {}
    for _lat, _lag, status in results:
        if status not in (200, 201):
            errors[str(status)] = errors.get(str(status), 0) + 1
    summary: dict[str, Any] = {"completed_ok": len(ok), "errors": errors, "timeout_ms": timeout * 1000,
                               "send_lag_ms_p95": percentile([lag * 1000 for _l, lag, _s in results], 95)}
    for q in (50, 95, 99):
        value = percentile(everything, q)
        summary[f"latency_ms_p{q}"] = value if value != float("inf") else None
    if ok:
        summary["latency_ms_max_answered"] = max(ok)
        summary["latency_ms_mean_answered"] = statistics.mean(ok)
    return summary


def measure(base: str, bodies: Sequence[bytes], rate: float, *, warmup: Sequence[bytes] = (),
            timeout: float = 20.0, connections: int = 256) -> dict[str, Any]:
    """Offer ``bodies`` at ``rate`` per second to ``POST base/v1/entries``; summarise latencies in ms."""
    if warmup:
        asyncio.run(_open_loop(base, "/v1/entries", warmup, min(rate, 100.0), timeout, 16))
    started = time.perf_counter()
    results = asyncio.run(_open_loop(base, "/v1/entries", bodies, rate, timeout, connections))
    wall = time.perf_counter() - started
    summary: dict[str, Any] = {
        "offered_rate_per_s": rate,
        "requests": len(bodies),
        "offered_seconds": len(bodies) / rate,
        "wall_seconds": wall,
        "connections": connections,
    }
    summary.update(_summarise(results, timeout))
    summary["achieved_ok_per_s"] = summary["completed_ok"] / wall
    return summary
