"""What the benchmark commands share: their common options and the results file they merge into."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_PG = os.environ.get("PARTSLEDGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def base_parser(description: str | None) -> argparse.ArgumentParser:
    """``--db``, ``--out``, ``--pg-url`` and ``--workdir``, as every benchmark takes them."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON results file (merged per database)")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="PostgreSQL URL; a scratch schema is used and dropped")
    parser.add_argument("--workdir", type=Path, default=None, help="where the SQLite file and key files go")
    return parser


def merge_run(path: Path, db: str, result: dict[str, Any], **top: Any) -> None:
    """Replace ``runs[db]`` in the JSON file at ``path`` (created if missing); ``top`` sets top-level keys."""
    document: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    document.setdefault("runs", {})[db] = result
    document.update(top)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


__all__ = ["DEFAULT_PG", "base_parser", "merge_run"]
