"""Full audit and offline verify rates beside the raw Ed25519 verify rate (SPEC §8: audit ≥ 70 % of raw verify,
memory flat in the ledger's size).

    python -m benchmarks.audit --db sqlite   --out benchmarks/audit_results.json
    python -m benchmarks.audit --db postgres --out benchmarks/audit_results.json [--pg-url URL]

For each ledger size (default 20,000 and 100,000 records) one run builds a
fresh log of real, signed, appended records — an OEM registered by the
operator, then ``part.commission`` entries (GTIN under the OEM's prefix,
random serial, lot, brand, model, warranty and the AI 8030 label signature
``part_sig``), appended 1,000 per transaction — and measures:

* the raw single-core PyNaCl verify rate over the exact messages the
  records' signatures cover (:func:`benchmarks.throughput.raw_verify`);
* ``partsledger audit --url`` against the real app under uvicorn on
  127.0.0.1 (a subprocess; fresh audit state), with and without the
  comparison of derived facts with the server's API;
* ``partsledger verify --db`` (the offline integrity check) on the same database;

each as records per second of wall time of the whole CLI command (process
start included), its ratio to the raw rate (the mean of the raw rate measured
just before the commands and just after them), and the command's peak RSS
(``VmHWM`` of that process, polled every 20 ms; helper processes it starts are
listed separately). The server is a separate process on the same machine: its
CPU time competes with the auditor's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import throughput
from benchmarks.common import base_parser, merge_run
from benchmarks.machine import machine_info
from benchmarks.workload import ORIGIN, BenchLog, bench_log
from ledger.digital_link import sign_part_id
from ledger.entries import SignedEntry, make_signed_entry
from ledger.gs1 import make_gtin, new_serial
from ledger.keys import KeyPair, b64encode, read_key_file

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("partsledger"))
TARGET_RATIO_MIN = 0.70
OEM, OEM_PREFIX = "bench-oem", "4012345"
BATCH = 1000


def log(message: str) -> None:
    print(f"[audit-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def commission_entries(oem: KeyPair, count: int) -> list[SignedEntry]:
    """``count`` signed ``part.commission`` entries as an OEM's plant would write them."""
    out = []
    for i in range(count):
        gtin, serial = make_gtin(OEM_PREFIX, 1000 + i % 50), new_serial()
        body = {"gtin": gtin, "serial": serial, "category": "brakes", "lot": f"BP{2400 + i // 5000}",
                "brand": "Bench Motors", "model": f"BM-BP-{i % 7}", "warranty_months": 24,
                "part_sig": sign_part_id(oem, gtin, serial)}
        out.append(make_signed_entry(oem, origin=ORIGIN, type="part.commission", org=OEM, body=body))
    return out


def build(bench: BenchLog, records: int) -> tuple[KeyPair, list[SignedEntry]]:
    """Register the OEM and append ``records`` commissioning entries; return the OEM key and a verify sample."""
    operator = read_key_file(bench.data_dir / "operator.key")
    oem = KeyPair.generate()
    bench.ledger.append(make_signed_entry(
        operator, origin=ORIGIN, type="org.register", org="partsledger-operator",
        body={"org_id": OEM, "kind": "oem", "name": "Bench Motors", "country": "DE", "gs1_prefixes": [OEM_PREFIX],
              "public_keys": [b64encode(oem.public_key)]}))
    sample: list[SignedEntry] = []
    done = 0
    while done < records:
        batch = commission_entries(oem, min(BATCH, records - done))
        bench.ledger.append_batch(batch)
        if len(sample) < 20_000:
            sample.extend(batch[: 20_000 - len(sample)])
        done += len(batch)
        if done % 20_000 == 0:
            log(f"  appended {done:,}")
    return oem, sample


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hwm_kb(pid: int) -> int | None:
    """Peak resident set (``VmHWM``) of one process: its own, unlike rusage, which a forked child inherits."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def timed_command(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``argv``; its wall time, exit code, JSON output and peak RSS (``VmHWM``, polled)."""
    started = time.perf_counter()
    peak = 0
    helpers: dict[int, int] = {}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        while proc.poll() is None:
            peak = max(peak, _hwm_kb(proc.pid) or 0)
            for child in _children(proc.pid):
                helpers[child] = max(helpers.get(child, 0), _hwm_kb(child) or 0)
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({proc.returncode}): {stderr[-2000:]}{stdout[-2000:]}")
    return {"seconds": elapsed, "peak_rss_mb": peak / 1024,
            "helper_processes_peak_rss_mb": sorted(kb / 1024 for kb in helpers.values()),
            "output": json.loads(stdout)}


class Server:
    """The real app under uvicorn on 127.0.0.1 in a subprocess."""

    def __init__(self, bench: BenchLog) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.serve", "--app", "ledger", "--port", str(self.port), "--db", bench.url,
             "--data-dir", str(bench.data_dir), "--origin", ORIGIN], cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/v1/log/key", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the server did not start")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure_size(args: argparse.Namespace, records: int) -> dict[str, Any]:
    out: dict[str, Any] = {"records_requested": records}
    with bench_log(args.db, args.pg_url, args.workdir) as bench:
        started = time.perf_counter()
        oem, sample = build(bench, records)
        total = bench.ledger.size()
        out["records"] = total
        out["build_seconds"] = time.perf_counter() - started
        log(f"{args.db}: {total:,} records built in {out['build_seconds']:.0f} s")
        bench.ledger.db.dispose()
        out["load_average_before"] = list(os.getloadavg())
        out["raw_verify_before"] = throughput.raw_verify(sample, oem.public_key)
        raw = out["raw_verify_before"]["verifies_per_s"]
        log(f"raw verify {raw:,.0f}/s")
        home = Path(tempfile.mkdtemp(prefix="partsledger-audit-home-", dir=args.workdir))
        env = {**os.environ, "NO_COLOR": "1"}
        try:
            server = Server(bench)
            try:
                for name, extra in (("audit_url_records_only", ["--no-compare"]), ("audit_url", [])):
                    state = home / f"{name}.sqlite3"
                    cpu_before = server.cpu_seconds()
                    run = timed_command([CLI, "audit", "--url", server.base, "--home", str(home), "--state",
                                         str(state), "--json", *extra], env)
                    run["server_cpu_s"] = server.cpu_seconds() - cpu_before
                    if run["output"].get("records") != total:
                        raise RuntimeError(f"audit checked {run['output'].get('records')} of {total} records")
                    run["compared"] = run["output"].get("compared")
                    del run["output"]
                    run["records_per_s"] = total / run["seconds"]
                    out[name] = run
            finally:
                server.close()
            run = timed_command([CLI, "verify", "--db", bench.url, "--data-dir", str(bench.data_dir), "--json"], env)
            if run["output"].get("records") != total:
                raise RuntimeError(f"verify checked {run['output'].get('records')} of {total} records")
            del run["output"]
            run["records_per_s"] = total / run["seconds"]
            out["verify_db"] = run
        finally:
            shutil.rmtree(home, ignore_errors=True)
        out["raw_verify_after"] = throughput.raw_verify(sample, oem.public_key)
        out["load_average_after"] = list(os.getloadavg())
        raw = (raw + out["raw_verify_after"]["verifies_per_s"]) / 2
        out["raw_verify_per_s"] = raw
        for name in ("audit_url_records_only", "audit_url", "verify_db"):
            run = out[name]
            run["ratio_to_raw_verify"] = run["records_per_s"] / raw
            log(f"{name}: {run['records_per_s']:,.0f} records/s = {run['ratio_to_raw_verify']:.2f} x raw "
                f"({raw:,.0f}/s), peak RSS {run['peak_rss_mb']:.0f} MB")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine_info(args.workdir or Path(tempfile.gettempdir()), REPO),
                              "workload": "org.register of one OEM, then part.commission entries with part_sig, "
                                          f"appended {BATCH} per transaction",
                              "cpus_used": os.cpu_count()}
    sizes = {}
    for records in args.sizes:
        sizes[str(records)] = measure_size(args, records)
    result["sizes"] = sizes
    small, large = (sizes[str(n)] for n in (min(args.sizes), max(args.sizes)))
    result["memory_growth_large_over_small"] = {
        name: large[name]["peak_rss_mb"] / small[name]["peak_rss_mb"]
        for name in ("audit_url", "audit_url_records_only", "verify_db")}
    result["target_ratio_min"] = TARGET_RATIO_MIN
    result["target_met"] = {name: all(s[name]["ratio_to_raw_verify"] >= TARGET_RATIO_MIN for s in sizes.values())
                            for name in ("audit_url", "audit_url_records_only", "verify_db")}
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    merge_run(args.out, args.db, result)
    log(f"target met: {result['target_met']}; memory growth: {result['memory_growth_large_over_small']}")


if __name__ == "__main__":
    main()
