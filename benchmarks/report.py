"""Print the figures of a results file as the Markdown table used in docs/benchmarks.md.

    python -m benchmarks.report benchmarks/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _ms(value: float | None, timeout_ms: float) -> str:
    return f"> {timeout_ms / 1000:.0f} s" if value is None else f"{value:,.1f} ms"


def _rate(value: float) -> str:
    return f"{value:,.0f}/s" if value >= 100 else f"{value:,.1f}/s"


def table(document: dict[str, Any]) -> str:
    runs = document["runs"]
    dbs = [db for db in ("sqlite", "postgres") if db in runs]
    lines = ["| | " + " | ".join(dbs) + " |", "|---|" + "---|" * len(dbs)]

    def row(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(runs[db]) for db in dbs) + " |")

    def when(r: dict[str, Any]) -> str:
        load = "/".join(f"{x:.1f}" for x in r["machine"]["load_average_at_start"])
        return f"{r['machine']['measured_at']}, {load}"

    row("measured at (UTC), load average 1/5/15 min at start", when)
    row("(a) raw Ed25519 verify, 1 core (PyNaCl)", lambda r: _rate(r["raw_verify"]["verifies_per_s"]))
    row("(b) single append (own transaction each)", lambda r: _rate(r["single_append"]["appends_per_s"]))
    row("(c) batch append (1000 per transaction)", lambda r: _rate(r["batch_append"]["appends_per_s"]))
    row("(c)/(a): batch ÷ raw verify, median of per-batch pairs (target ≥ 0.5 on SQLite)",
        lambda r: f"{r['batch_over_raw_verify']:.3f}")
    row("(c)/(a): the whole batch run ÷ the raw rate of (a)",
        lambda r: f"{r['batch_over_raw_verify_aggregate']:.3f}" if "batch_over_raw_verify_aggregate" in r else "")
    row("(c) with no helper process (all on one core), ÷ raw verify, median of pairs",
        lambda r: f"{r['batch_over_raw_verify_one_thread']:.3f}" if "batch_over_raw_verify_one_thread" in r else "")
    for index, run in enumerate(runs[dbs[0]].get("latency", {}).get("runs", [])):
        rate = run["offered_rate_per_s"]

        def cell(r: dict[str, Any], key: str, i: int = index) -> str:
            side = r["latency"]["runs"][i][key]
            timeout = side["timeout_ms"]
            return (f"{_ms(side['latency_ms_p50'], timeout)} / {_ms(side['latency_ms_p95'], timeout)} / "
                    f"{_ms(side['latency_ms_p99'], timeout)}; {side['completed_ok']}/{side['requests']} answered, "
                    f"{side['achieved_ok_per_s']:,.0f}/s")

        row(f"(d) bare FastAPI @ {rate:g}/s offered: p50 / p95 / p99", lambda r, c=cell: c(r, "bare_fastapi"))
        row(f"(d) partsledger receipt @ {rate:g}/s offered: p50 / p95 / p99",
            lambda r, c=cell: c(r, "partsledger"))

        def ratio(r: dict[str, Any], i: int = index) -> str:
            value = r["latency"]["runs"][i]["p95_ratio"]
            return "not defined (p95 > timeout)" if value is None else f"{value:.1f}×"

        row(f"(d) p95 ratio @ {rate:g}/s (target ≤ 25× at 1000/s)", ratio)
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results.json")
    print(table(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
