"""Benchmark of the JSON scan (SPEC §8): the verdict with inclusion proof, beside a bare FastAPI endpoint.

Not a test; run by hand::

    python -m benchmarks.scan --records 100000 --out benchmarks/scan_results.json [--db postgresql://...]

1. Builds (or reuses, with ``--data-dir``) a ledger of at least ``--records``
   records: an OEM commissioning parts in batches of 1,000 signed entries.
2. Serves the real app (one uvicorn process, scan rate limit lifted) and a
   bare FastAPI app whose ``GET /01/{gtin}/21/{serial}`` returns a constant
   JSON verdict, one after the other on the same machine.
3. For 8, 32 and 64 concurrent clients (closed loop, keep-alive
   connections, raw HTTP/1.1 so the client is not the bottleneck), runs each
   for ``--seconds`` and records throughput and p50/p99 latency: the bare
   endpoint, the scan *cold* (random labels among every commissioned
   serial: almost every scan misses the verdict cache and computes verdict
   and proof afresh) and the scan *hot* (``--hot`` distinct labels scanned
   again and again at an unchanged log: the cached-response path), each in
   its own server process, back to back for each concurrency.
4. Unless ``--no-asgi-floor``, also a raw ASGI endpoint answering the same
   constant JSON with no framework at all, and the scan's ratios to it
   (``ratios_vs_bare_asgi``): the scan's plain JSON path answers before
   FastAPI's routing (``api.routes.scan.ScanFastLane``), so beside the bare
   FastAPI endpoint it is spared framework work that endpoint still does;
   beside this floor, what the scan itself costs shows.

Targets (SPEC §8, against the bare FastAPI endpoint): scan throughput ≥ 1/3 of the bare endpoint's, scan p99
≤ 3× the bare p99. The results file holds one entry per database (``sqlite``, ``postgresql``); a run replaces
its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ORIGIN = "bench.partsledger/log"
PREFIX = "6901234"
CONCURRENCY = (8, 32, 64)


# --- building the ledger ------------------------------------------------------------------------------
def build(data_dir: Path, db: str | None, records: int) -> dict[str, Any]:
    from ledger.entries import make_signed_entry
    from ledger.gs1 import make_gtin
    from ledger.keys import KeyPair, b64encode, read_key_file
    from ledger.service import LedgerSettings, open_ledger

    ledger = open_ledger(LedgerSettings(data_dir=data_dir, db_url=db, origin=ORIGIN))
    gtin = make_gtin(PREFIX, 42)
    size = ledger.size()
    if size >= records:
        return {"records": size, "built_seconds": 0.0, "gtin": gtin}
    operator = read_key_file(data_dir / "operator.key")
    oem = KeyPair.generate()
    (data_dir / "oem.seed").write_bytes(oem.seed())
    ledger.append(make_signed_entry(operator, origin=ORIGIN, type="org.register", org="partsledger-operator",
                                    body={"org_id": "bench-oem", "kind": "oem", "name": "Bench OEM",
                                          "gs1_prefixes": [PREFIX], "public_keys": [b64encode(oem.public_key)]}))
    started = time.perf_counter()
    n = ledger.size()
    batch_no = 0
    while n < records:
        count = min(1000, records - n)
        batch = [make_signed_entry(oem, origin=ORIGIN, type="part.commission", org="bench-oem",
                                   body={"gtin": gtin, "serial": f"B{batch_no:05d}K{i:04d}", "lot": f"L{batch_no % 50}",
                                         "category": "brakes"})
                 for i in range(count)]
        ledger.append_batch(batch)
        n += count
        batch_no += 1
        print(f"\r  built {n} records", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    built = time.perf_counter() - started
    if ledger.db.dialect == "postgresql":
        # Planner statistics for the freshly loaded tables, as docs/operations.md asks after a bulk load (a
        # server with autovacuum on gathers them itself, a while later).
        with ledger.db.writer.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    ledger.db.dispose()
    return {"records": n, "built_seconds": round(built, 1), "gtin": gtin}


# --- serving ----------------------------------------------------------------------------------------------
def bare_app() -> Any:
    """The baseline: the same route answering a constant JSON verdict (no database, no proof)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/01/{gtin}/21/{serial}")
    async def bare(gtin: str, serial: str) -> JSONResponse:
        return JSONResponse({"verdict": "genuine", "part": {"gtin": gtin, "serial": serial}})

    from api.app import freeze_startup_objects

    freeze_startup_objects()  # as the real app does at startup: same garbage-collector treatment
    return app


def bare_asgi_app() -> Any:
    """A stricter baseline than the SPEC's: the same constant JSON from a raw ASGI callable, no framework at all.

    The scan's plain JSON path answers before FastAPI's routing (``api.routes.scan.ScanFastLane``), so it
    pays less framework than the bare FastAPI endpoint does; beside this floor, the scan's own cost shows.
    """
    from api.app import freeze_startup_objects

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        parts = scope["path"].split("/")  # /01/{gtin}/21/{serial}
        body = json.dumps({"verdict": "genuine", "part": {"gtin": parts[2], "serial": parts[4]}},
                          separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    freeze_startup_objects()
    return app


def scan_app() -> Any:
    """The real app over the ledger named by ``PL_BENCH_DATA_DIR`` (and ``PL_BENCH_DB``), scan rate limit lifted."""
    from api.app import create_app
    from api.settings import ApiLimits, ApiSettings
    from ledger.service import LedgerSettings, open_ledger

    settings = LedgerSettings(data_dir=Path(os.environ["PL_BENCH_DATA_DIR"]), db_url=os.environ.get("PL_BENCH_DB"),
                              origin=ORIGIN)
    limits = ApiLimits(scan_rate_per_minute=10**9, scan_burst=10**9)
    return create_app(ApiSettings(ledger=settings, limits=limits), ledger=open_ledger(settings))


def serve(app_name: str, port: int, data_dir: Path | None, db: str | None, workers: int = 1) -> None:
    import uvicorn

    assert data_dir is not None
    os.environ["PL_BENCH_DATA_DIR"] = str(data_dir)
    if db:
        os.environ["PL_BENCH_DB"] = db
    factory = {"bare": bare_app, "bare_asgi": bare_asgi_app}.get(app_name, scan_app)
    if workers == 1:
        uvicorn.run(factory(), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    else:  # each worker process builds its own app (and opens its own ledger)
        uvicorn.run(f"benchmarks.scan:{factory.__name__}", factory=True, workers=workers, host="127.0.0.1",
                    port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(app_name: str, data_dir: Path, db: str | None, workers: int = 1) -> Iterator[int]:
    port = _free_port()
    args = [sys.executable, "-m", "benchmarks.scan", "--serve", app_name, "--port", str(port),
            "--data-dir", str(data_dir), "--workers", str(workers)] + (["--db", db] if db else [])
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server died")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()


# --- load ---------------------------------------------------------------------------------------------------
async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: application/json\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _load(port: int, paths: list[str], clients: int, seconds: float, *, round_no: int = 0,
                seen: set[str] | None = None) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``seconds``, each scanning labels drawn at random from ``paths``.

    Every round draws its own labels (the seeds include ``round_no``): replaying an earlier round's
    sequence would find its verdicts cached. ``seen``: the labels this server has already been asked
    for, across rounds, so ``repeated_labels`` counts every label that could have hit the cache.
    """
    latencies: list[float] = []
    errors = 0
    seen = set() if seen is None else seen
    repeats = 0
    stop_at = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        nonlocal errors, repeats
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                path = rng.choice(paths)
                repeats += path in seen
                seen.add(path)
                started = time.perf_counter()
                status = await _get(reader, writer, path)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker((round_no * 1000 + clients) * 1000 + i) for i in range(clients)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "repeated_labels": round(repeats / max(1, len(latencies)), 3),
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
    }


def warm_up(port: int, paths: list[str]) -> None:
    asyncio.run(_load(port, paths[:50], 8, 2.0))  # a few labels only: the cold runs stay cold


def _loadavg() -> str:
    with suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])
    return "unknown"


def _ratios(scan: list[dict[str, Any]], bare: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s, b in zip(scan, bare, strict=True):
        throughput = round(s["throughput_rps"] / b["throughput_rps"], 3)
        p99 = round(s["p99_ms"] / b["p99_ms"], 2)
        out.append({"clients": s["clients"], "throughput_ratio": throughput, "p99_ratio": p99,
                    "target_met": throughput >= 1 / 3 and p99 <= 3.0})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--db", help="PostgreSQL URL (default: SQLite in the data directory)")
    parser.add_argument("--data-dir", type=Path, help="reuse a built ledger here")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "scan_results.json")
    parser.add_argument("--hot", type=int, default=200,
                        help="distinct labels of the hot run (repeat scans: the verdict cache's case); 0: no hot run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measure each concurrency this many times (bare, cold, hot back to back each time); "
                             "the figures reported are each run's median round by scan/bare throughput ratio")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn worker processes of every server, the bare endpoint's included (default 1)")
    parser.add_argument("--asgi-floor", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure a raw ASGI endpoint (no framework), reported beside the targets")
    parser.add_argument("--serve", choices=["scan", "bare", "bare_asgi"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.data_dir, args.db, args.workers)
        return
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="pl-scan-bench-"))
    info = build(data_dir, args.db, args.records)
    # Cold: every commissioned serial, far more labels than the verdict cache holds (4,096), so almost every
    # scan computes its verdict and proof afresh; "repeated_labels" says how many could have hit the cache.
    serials = [f"B{b:05d}K{i:04d}" for b in range(max(1, (info["records"] - 2) // 1000)) for i in range(1000)]
    cold = [f"/01/{info['gtin']}/21/{s}" for s in serials]
    rng = random.Random(7)
    rng.shuffle(cold)
    results: dict[str, Any] = {
        "command": "python -m benchmarks.scan " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "database": "postgresql" if args.db else "sqlite", **info,
        "scan_rate_limit": "lifted for the run (ApiLimits(scan_rate_per_minute=10**9, scan_burst=10**9))",
        "workers": args.workers,
        "loadavg_start": _loadavg(),
    }
    runs: dict[str, list[str]] = {"bare": cold, "cold": cold}
    if args.hot:
        runs["hot"] = random.Random(7).sample(cold, min(args.hot, len(cold)))
    if args.asgi_floor:
        runs["bare_asgi"] = cold
    baselines = {"bare", "bare_asgi"}
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    # All servers up at once (idle ones cost nothing), each warmed up; then for each concurrency the bare
    # endpoint, the cold scan and the hot scan run back to back, so load from elsewhere on the machine
    # drifts as little as possible between a scan figure and the bare figure it is divided by.
    with ExitStack() as stack:
        ports = {name: stack.enter_context(server(name if name in baselines else "scan", data_dir, args.db,
                                                         args.workers))
                 for name in runs}
        for name, paths in runs.items():
            warm_up(ports[name], paths)
        asked: dict[str, set[str]] = {name: set() for name in runs}
        for clients in CONCURRENCY:
            for round_no in range(args.rounds):
                for name, paths in runs.items():
                    measured[name].append(asyncio.run(_load(ports[name], paths, clients, args.seconds,
                                                            round_no=round_no + 1, seen=asked[name])))
    results["rounds"] = {name: measured[name] for name in runs}
    for name in [n for n in runs if n not in baselines]:
        # For each concurrency, the round whose throughput ratio is the median: its scan figures beside
        # the bare figures measured right before them (every round is kept under "rounds").
        chosen_scan, chosen_bare = [], []
        for level in range(len(CONCURRENCY)):
            rounds = range(level * args.rounds, (level + 1) * args.rounds)
            pairs = sorted(((measured[name][i], measured["bare"][i]) for i in rounds),
                           key=lambda sb: sb[0]["throughput_rps"] / sb[1]["throughput_rps"])
            scan_run, bare_run = pairs[len(pairs) // 2]
            chosen_scan.append(scan_run)
            chosen_bare.append(bare_run)
        results[name] = {"distinct_labels": len(runs[name]), "scan": chosen_scan, "bare": chosen_bare,
                         "ratios": _ratios(chosen_scan, chosen_bare)}
        if "bare_asgi" in runs:  # the same chosen rounds beside the raw ASGI endpoint measured in them
            floor = [measured["bare_asgi"][measured[name].index(run)] for run in chosen_scan]
            results[name]["bare_asgi"] = floor
            results[name]["ratios_vs_bare_asgi"] = [
                {k: v for k, v in ratio.items() if k != "target_met"} for ratio in _ratios(chosen_scan, floor)]
    results["loadavg_end"] = _loadavg()
    # One file for both databases: this run replaces its own database's entry and keeps the other's.
    stored: dict[str, Any] = {}
    with suppress(OSError, ValueError):
        stored = json.loads(args.out.read_text(encoding="utf-8"))
    stored = {k: v for k, v in stored.items() if k in {"sqlite", "postgresql"}}
    stored[results["database"]] = results
    args.out.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
