"""Run one app under uvicorn on 127.0.0.1 for the latency benchmark (a subprocess).

``--app ledger`` serves the real partsledger app over an existing log;
``--app bare`` serves the bare baseline. Both use the same uvicorn settings
(one process, no access log) so that the comparison is about the app alone.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI


def build(app_name: str, db: str | None, data_dir: Path | None, origin: str | None) -> FastAPI:
    if app_name == "bare":
        from benchmarks.bare_app import create_bare_app

        return create_bare_app()
    from api.app import create_app
    from api.settings import ApiSettings
    from ledger.service import LedgerSettings, open_ledger

    assert data_dir is not None and origin is not None
    settings = LedgerSettings(data_dir=data_dir, db_url=db, origin=origin)
    return create_app(ApiSettings(ledger=settings, append_process=True), ledger=open_ledger(settings))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", choices=["ledger", "bare"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--origin")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.workers > 1:
        if args.app == "ledger":
            os.environ.update({"PARTSLEDGER_DB": args.db, "PARTSLEDGER_DATA_DIR": str(args.data_dir),
                               "PARTSLEDGER_ORIGIN": args.origin})
            target = "api.server:app_from_env"
        else:
            target = "benchmarks.bare_app:create_bare_app"
        uvicorn.run(target, factory=True, workers=args.workers, host="127.0.0.1", port=args.port,
                    log_level="warning", access_log=False)
        return
    app = build(args.app, args.db, args.data_dir, args.origin)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
