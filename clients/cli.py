"""The ``partsledger`` command line.

Exit codes: 0 success; 1 the thing checked is bad (verification failed,
verdict not genuine); 2 the request was bad (user error, rejected input);
3 the server or database could not be reached.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from ledger.errors import IntegrityError, LedgerError

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="partsledger",
    help="partsledger: a verifiable ledger of automotive aftermarket parts.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()

EXIT_BAD = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Map the error tree to a one-line message and an exit code — the one place the CLI does this."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except IntegrityError as exc:
            seq = f" (first bad seq: {exc.seq})" if exc.seq is not None else ""
            raise fail(f"{exc.message}{seq}", EXIT_BAD) from None
        except LedgerError as exc:
            raise fail(f"{exc.code}: {exc.message}") from None
        except OSError as exc:
            raise fail(f"{exc.strerror or exc}", EXIT_UNREACHABLE) from None
        except Exception as exc:  # database drivers and the like: no tracebacks for users
            name = type(exc).__name__
            first = str(exc).splitlines()[0] if str(exc) else ""
            if "OperationalError" in name or "connect" in first.lower():
                raise fail(f"cannot reach the database: {first}", EXIT_UNREACHABLE) from None
            raise

    return wrapper


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


DbOption = Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite file in --data-dir)")]
DataDirOption = Annotated[Path, typer.Option("--data-dir", help="Directory for the SQLite file and key files")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _settings(db: str | None, data_dir: Path, origin: str | None = None) -> Any:
    from ledger.service import LedgerSettings

    return LedgerSettings.from_env(db_url=db, data_dir=data_dir, origin=origin)


@app.command()
@user_errors
def serve(
    db: DbOption = None,
    data_dir: DataDirOption = Path("partsledger-data"),
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    origin: Annotated[str | None, typer.Option(help="Log origin (first checkpoint line)")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Serve the ledger over HTTP (SQLite in ./partsledger-data by default)."""
    import uvicorn

    from api.app import create_app
    from api.settings import ApiSettings
    from ledger.service import open_ledger

    settings = _settings(db, data_dir, origin)
    ledger = open_ledger(settings)
    console.print(f"partsledger: log {ledger.origin!r}, {ledger.size()} records, "
                  f"database {ledger.db.dialect}; listening on http://{host}:{port}")
    del workers
    uvicorn.run(create_app(ApiSettings(ledger=settings), ledger=ledger), host=host, port=port, log_level="info")


@app.command()
@user_errors
def verify(
    db: DbOption = None,
    data_dir: DataDirOption = Path("partsledger-data"),
    json_output: JsonOption = False,
    log_key: Annotated[Path | None, typer.Option(help="Log key file (to check checkpoint signatures)")] = None,
    replay: Annotated[bool, typer.Option(help="Also replay the state from genesis and compare")] = False,
) -> None:
    """Recompute every hash, link, signature, Merkle node and checkpoint root of a stored ledger."""
    from ledger.keys import read_key_file
    from ledger.note import Signer
    from ledger.storage.db import Database
    from ledger.verify import verify_database

    settings = _settings(db, data_dir)
    database = Database(settings.database_url)
    key_path = log_key or settings.log_key_path
    vkey = None
    if key_path.exists():
        pair = read_key_file(key_path)
        vkey = Signer(settings.origin, pair.signing_key).verifier_key()
    try:
        report = verify_database(database, verifier_key=vkey)
        replayed = None
        if replay:
            from ledger.replay import compare_replay

            replayed = compare_replay(database)
    except IntegrityError as exc:
        if json_output:
            emit_json({"ok": False, "seq": exc.seq, "code": exc.code, "error": exc.message})
            raise typer.Exit(EXIT_BAD) from None
        raise
    finally:
        database.dispose()
    summary = {
        "ok": True,
        "records": report.records,
        "signatures": report.signatures,
        "checkpoints": report.checkpoints,
        "merkle_nodes": report.nodes,
        "root": report.root.hex(),
        "origin": report.origin,
        "checkpoint_signatures_checked": vkey is not None,
        "replayed_tables": replayed,
    }
    if json_output:
        emit_json(summary)
        return
    out.print(f"ok: {report.records} records, {report.signatures} signatures, {report.nodes} Merkle nodes and "
              f"{report.checkpoints} checkpoints verified; root {report.root.hex()}"
              + ("" if vkey else " (checkpoint signatures not checked: no log key)")
              + (f"; replay matches on {len(replayed)} tables" if replayed is not None else ""))


def main() -> None:
    app()


__all__ = ["app", "main"]
