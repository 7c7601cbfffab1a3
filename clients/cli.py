"""The ``partsledger`` command line.

Exit codes (the same for every command):

* ``0`` success;
* ``1`` the thing checked is bad: a verification or audit failed (the message names the
  first bad seq), a log forked or shrank, a proof did not verify, a scanned part is not genuine;
* ``2`` the request was bad: user error, rejected input, a policy refusal, a wrong passphrase;
* ``3`` the server or database could not be reached or did not answer with the API.

Human output goes to the terminal; ``--json`` prints one JSON document on stdout instead
(errors too: ``{"ok": false, "code": ..., "error": ..., "seq": ...}``). No command prints a
traceback for a user error, and none prints a private key or passphrase.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clients.cli_common import (
    DEFAULT_HOME,
    DEFAULT_URL,
    EXIT_USAGE,
    HomeOption,
    PinOption,
    UrlOption,
    console,
    emit_json,
    failure,
    open_client,
    out,
    url_slug,
    user_errors,
)
from clients.cli_events import WORKSHOP_COMMANDS, grant_app, recall_app
from clients.cli_keys import keys_app, org_app
from clients.cli_parts import parts_app
from clients.cli_reads import READ_COMMANDS
from clients.epcis_export import export_app
from ledger.errors import NotFound

if TYPE_CHECKING:
    from ledger.verify import VerifyReport

app = typer.Typer(
    name="partsledger",
    help="partsledger: a verifiable ledger of automotive aftermarket parts.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.add_typer(keys_app, name="keys")
app.add_typer(org_app, name="org")
app.add_typer(grant_app, name="grant")
app.add_typer(recall_app, name="recall")
app.add_typer(export_app, name="export")
app.registered_commands.extend(parts_app.registered_commands)  # top-level: commission, labels, scan, ...
for _command in (*WORKSHOP_COMMANDS, *READ_COMMANDS):  # install, remove, claim, decide, pay; claims, part, ...
    app.command()(_command)

DbOption = Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite file in --data-dir)")]
DataDirOption = Annotated[Path, typer.Option("--data-dir", help="Directory for the SQLite file and key files")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
LogKeyFileOption = Annotated[Path | None, typer.Option(
    "--log-key", help="Log signing key file, created (mode 0600) if missing (default: DATA_DIR/log.key, or "
                      "PARTSLEDGER_LOG_KEY)")]

WorkersOption = Annotated[int, typer.Option(min=1, help="uvicorn worker processes (each opens the ledger; the "
                                                        "database serialises their appends)")]
AppendProcessOption = Annotated[bool, typer.Option(
    "--append-process/--no-append-process",
    help="Commit single appends in a child process of each worker (off the worker's interpreter lock: "
         "receipts stay fast under load) instead of in a thread of the worker")]


def _settings(db: str | None, data_dir: Path, origin: str | None = None, log_key: Path | None = None) -> Any:
    from ledger.service import LedgerSettings

    return LedgerSettings.from_env(db_url=db, data_dir=data_dir, origin=origin, log_key_file=log_key)


@app.command()
@user_errors
def serve(
    db: DbOption = None,
    data_dir: DataDirOption = Path("partsledger-data"),
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    origin: Annotated[str | None, typer.Option(help="Log origin (first checkpoint line)")] = None,
    workers: WorkersOption = 1,
    log_key: LogKeyFileOption = None,
    append_process: AppendProcessOption = True,
) -> None:
    """Serve the ledger over HTTP (SQLite in ./partsledger-data by default)."""
    import uvicorn

    from api.app import create_app
    from api.settings import ApiSettings
    from ledger.service import open_ledger

    settings = _settings(db, data_dir, origin, log_key)
    ledger = open_ledger(settings)
    console.print(f"partsledger: log {ledger.origin!r}, {ledger.size()} records, "
                  f"database {ledger.db.dialect}; listening on http://{host}:{port}")
    if workers == 1:
        uvicorn.run(create_app(ApiSettings(ledger=settings, append_process=append_process), ledger=ledger),
                    host=host, port=port, log_level="info")
        return
    # Each worker process opens the same ledger from the environment (api.server.app_from_env).
    os.environ.update({"PARTSLEDGER_DB": settings.database_url, "PARTSLEDGER_DATA_DIR": str(settings.data_dir),
                       "PARTSLEDGER_ORIGIN": ledger.origin, "PARTSLEDGER_LOG_KEY": str(settings.log_key_path),
                       "PARTSLEDGER_APPEND_PROCESS": "1" if append_process else "0"})
    ledger.db.dispose()
    uvicorn.run("api.server:app_from_env", factory=True, workers=workers, host=host, port=port, log_level="info")


@app.command()
@user_errors
def demo(
    db: DbOption = None,
    data_dir: DataDirOption = Path("partsledger-data"),
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    origin: Annotated[str | None, typer.Option(help="Log origin (first checkpoint line)")] = None,
    workers: WorkersOption = 1,
    serve_it: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve after building")] = True,
    log_key: LogKeyFileOption = None,
) -> None:
    """Build the demo world (an OEM, its supplier, workshops on four continents, parts, a recall, claims)
    in a fresh database and serve it; an existing demo database is served as it is."""
    from ledger.demo import build_demo
    from ledger.keys import read_key_file
    from ledger.service import open_ledger

    settings = _settings(db, data_dir, origin, log_key)
    ledger = open_ledger(settings)
    if ledger.size() == 1:
        world = build_demo(ledger, read_key_file(settings.operator_key_path), settings.data_dir)
        summary = world.summary()
        console.print(f"partsledger demo: {summary['records']} records written; orgs: "
                      f"{', '.join(sorted(summary['orgs'].values()))}; their keys are in {summary['key_dir']}",
                      soft_wrap=True)
        console.print("Scan these labels (open them in a browser, or `partsledger scan URI`; the phone "
                      f"scanner is at http://{host}:{port}/scan):", soft_wrap=True)
        for verdict, uri in demo_labels(ledger, world.parts, f"http://{host}:{port}"):
            console.print(f"  {verdict:<9} {uri}", soft_wrap=True, markup=False, highlight=False)
    else:
        console.print(f"partsledger demo: the database already holds {ledger.size()} records; serving it as it is "
                      "(the demo world is only built into a fresh database)", soft_wrap=True)
    ledger.db.dispose()
    if serve_it:
        serve(db=db, data_dir=data_dir, host=host, port=port, origin=origin, workers=workers, log_key=log_key)


def demo_labels(ledger: Any, parts: dict[str, tuple[str, str]], base: str) -> list[tuple[str, str]]:
    """One signed label URI per verdict the demo world shows, with that verdict as the ledger judges it."""
    from ledger.digital_link import build_uri
    from ledger.resolve import label_sig, part_view
    from ledger.verdict import judge

    shown: dict[str, str] = {}
    for name in ("brake_pads_4", "adas_radar", "brake_pads_1", "brake_pads_0", "hv_pack_1", "second_life_pack"):
        gtin, serial = parts[name]
        view = part_view(ledger, gtin, serial)
        if view is None:
            continue
        sig = label_sig(ledger, view)
        verdict = judge(view.facts, sig="valid" if sig else "missing").verdict
        shown.setdefault(verdict, build_uri(base, gtin, serial, lot=view.facts.lot, sig=sig))
    return sorted(shown.items(), key=lambda item: ("genuine", "recalled", "suspect", "retired",
                                                   "unknown").index(item[0]))


@app.command()
@user_errors
def verify(
    db: DbOption = None,
    data_dir: DataDirOption = Path("partsledger-data"),
    json_output: JsonOption = False,
    log_key: Annotated[Path | None, typer.Option(help="Log key file (to check checkpoint signatures)")] = None,
    replay: Annotated[bool, typer.Option(help="Also replay the state from genesis and compare")] = False,
    origin: Annotated[str | None, typer.Option(envvar="PARTSLEDGER_ORIGIN",
                                               help="Expected log origin (default: the one its checkpoints name)")
                      ] = None,
) -> None:
    """Recompute every hash, link, signature, Merkle node and checkpoint root of a stored ledger.

    With ``--json`` a failure is one object too, ``{"ok": false, "code", "error", "seq"}`` (``seq``: the
    first bad record, or null when the failure is not about a record), with the same exit codes.
    """
    try:
        report, replayed, public_key = _verify(db, data_dir, log_key, replay, origin)
    except Exception as exc:
        found = failure(exc) if json_output else None
        if found is None:
            raise  # the human message (or a bug) is user_errors' to print
        data, code, _ = found
        emit_json({"seq": None, **data})
        raise typer.Exit(code) from None
    summary = {
        "ok": True,
        "records": report.records,
        "signatures": report.signatures,
        "checkpoints": report.checkpoints,
        "merkle_nodes": report.nodes,
        "root": report.root.hex(),
        "origin": report.origin,
        "checkpoint_signatures_checked": public_key is not None,
        "replayed_tables": replayed,
    }
    if json_output:
        emit_json(summary)
        return
    out.print(f"ok: {report.records} records, {report.signatures} signatures, {report.nodes} Merkle nodes and "
              f"{report.checkpoints} checkpoints verified; root {report.root.hex()}"
              + ("" if public_key else " (checkpoint signatures not checked: no log key)")
              + (f"; replay matches on {len(replayed)} tables" if replayed is not None else ""), soft_wrap=True)


def _verify(db: str | None, data_dir: Path, log_key: Path | None, replay: bool,
            origin: str | None) -> tuple[VerifyReport, list[str] | None, bytes | None]:
    from ledger.keys import read_key_file
    from ledger.storage.db import Database
    from ledger.verify import verify_database

    settings = _settings(db, data_dir)
    if log_key is not None and not log_key.is_file():
        raise NotFound(f"--log-key: no key file at {log_key}", field="log_key")
    database = Database(settings.database_url, must_exist=True)  # verifying never creates a database
    key_path = log_key or settings.log_key_path
    # The key file holds no origin: checkpoints are checked under the origin they name (which must be
    # ``--origin`` if given), so a log served with ``--origin`` verifies without repeating it here.
    public_key = read_key_file(key_path).public_key if key_path.exists() else None
    try:
        report = verify_database(database, log_public_key=public_key, expected_origin=origin)
        replayed = None
        if replay:
            from ledger.replay import compare_replay

            replayed = compare_replay(database)
    finally:
        database.dispose()
    return report, replayed, public_key


@app.command()
@user_errors
def audit(
    url: UrlOption = DEFAULT_URL,
    home: HomeOption = DEFAULT_HOME,
    log_key: PinOption = None,
    state: Annotated[Path | None, typer.Option(help="Resumable audit state file (default: under --home)")] = None,
    page: Annotated[int, typer.Option(min=1, max=1000, help="Records per request")] = 1000,
    compare: Annotated[bool, typer.Option(help="Compare derived facts with the server's API answers")] = True,
    json_output: JsonOption = False,
) -> None:
    """Download and verify a whole remote ledger: bytes, chain, signatures, checkpoints, root, state."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from clients.audit import audit as run_audit

    state_path = state or home / "audit" / f"{url_slug(url)}.sqlite3"
    with open_client(url, home, log_key) as client, Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=json_output or not console.is_terminal,
    ) as bar:
        task = bar.add_task("auditing", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = run_audit(client, state_path, page=page, progress=progress, compare=compare)
    if json_output:
        emit_json(report.to_json())
        return
    resumed = f" (resumed at {report.resumed_from})" if report.resumed_from else ""
    out.print(f"ok: {report.size} records of {report.origin} verified{resumed}: canonical bytes, hash chain, "
              f"signatures under {report.keys} keys of {report.orgs} orgs, checkpoint signature and consistency, "
              f"Merkle root {report.root.hex()}"
              + (f"; matches the server on {', '.join(report.compared)}" if report.compared else ""),
              soft_wrap=True)


def main() -> None:
    if "--json" not in sys.argv[1:]:
        app()
        return
    # --json: a usage error (unknown option, bad value) is one JSON object on stdout too, exit 2.
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        emit_json({"ok": False, "code": "aborted", "error": "aborted"})
        sys.exit(1)
    except Exception as exc:  # typer's (vendored) click usage errors: duck-typed, the classes are private
        format_message = getattr(exc, "format_message", None)
        if format_message is None:
            raise
        param = getattr(getattr(exc, "param", None), "name", None)
        emit_json({"ok": False, "code": "invalid_field", "error": str(format_message()),
                   **({"field": param} if isinstance(param, str) else {})})
        sys.exit(int(getattr(exc, "exit_code", EXIT_USAGE)))
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]


if __name__ == "__main__":
    main()
