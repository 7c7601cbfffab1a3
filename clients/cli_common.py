"""What every ``partsledger`` client command shares: where things live, the client, keys, output.

A user's client-side files live under ``--home`` (``$PARTSLEDGER_HOME``,
default ``~/.partsledger``)::

    keystore.json        the encrypted keystore (mode 0600)
    checkpoints.json     per-log verifier key and newest checkpoint seen (clients.witness)
    journal/             signed entries of interrupted commands, waiting to be re-sent
    audit/               resumable audit state, one SQLite file per server

The passphrase comes from ``$PARTSLEDGER_PASSPHRASE`` or a hidden prompt;
it is never echoed, logged or printed, and neither is any private key.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from clients.errors import LogForked, LogShrunk, ServerError, ServerUnreachable
from clients.keystore import PASSPHRASE_ENV, Keystore
from clients.sdk import PartsLedger
from ledger.errors import IntegrityError, InvalidInput, LedgerError, ProofError
from ledger.keys import KeyPair

P = ParamSpec("P")
R = TypeVar("R")

EXIT_OK = 0
EXIT_BAD = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)

DEFAULT_URL = "http://127.0.0.1:8000"

UrlOption = Annotated[str, typer.Option("--url", envvar="PARTSLEDGER_URL", help="Server base URL")]
HomeOption = Annotated[Path, typer.Option("--home", envvar="PARTSLEDGER_HOME",
                                          help="Directory for the keystore and client state")]
PinOption = Annotated[str | None, typer.Option("--log-key", envvar="PARTSLEDGER_LOG_VKEY",
                                               help="Pin the log's note verifier key (else trust on first use)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout")]
KeyOption = Annotated[str, typer.Option("--key", "-k", help="Keystore name of the signing key")]

DEFAULT_HOME = Path(os.path.expanduser("~/.partsledger"))


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def exit_code_for(exc: LedgerError) -> int:
    """The one mapping from the error tree to exit codes (documented at the top of clients/cli.py)."""
    if isinstance(exc, ServerUnreachable | ServerError):
        return EXIT_UNREACHABLE
    if isinstance(exc, IntegrityError | ProofError):
        return EXIT_BAD
    return EXIT_USAGE


def error_json(exc: LedgerError) -> dict[str, Any]:
    data: dict[str, Any] = {"ok": False, "code": str(exc.details.get("server_code") or exc.code),
                            "error": exc.message}
    if exc.field:
        data["field"] = exc.field
    if isinstance(exc, IntegrityError) and exc.seq is not None:
        data["seq"] = exc.seq
    if isinstance(exc, LogForked | LogShrunk):
        data["evidence"] = {"remembered_checkpoint": exc.remembered, "offered_checkpoint": exc.offered}
    return data


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", markup=True, highlight=False, soft_wrap=True)  # one line
    return typer.Exit(code)


def failure(exc: BaseException) -> tuple[dict[str, Any], int, bool] | None:
    """A failure a user can cause, as ``(JSON error object, exit code, code shown in the message)``.

    ``None`` for anything else (a bug: let it surface). The JSON object is
    ``{"ok": false, "code", "error"}`` plus ``field``, ``seq`` or ``evidence`` where known.
    """
    if isinstance(exc, LedgerError):
        return error_json(exc), exit_code_for(exc), True
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError |
                  FileExistsError):
        where = f"{exc.filename}: " if exc.filename else ""
        code = "not_found" if isinstance(exc, FileNotFoundError) else "invalid_field"
        return _plain_error(code, f"{where}{exc.strerror or exc}"), EXIT_USAGE, False
    if isinstance(exc, OSError):
        return _plain_error("unreachable", f"{exc.strerror or exc}"), EXIT_UNREACHABLE, False
    if isinstance(exc, Exception):  # database drivers and the like: no tracebacks for users
        first = str(exc).splitlines()[0] if str(exc) else ""
        if "OperationalError" in type(exc).__name__ or "connect" in first.lower():
            return _plain_error("unreachable", f"cannot reach the database: {first}"), EXIT_UNREACHABLE, False
    return None


def _plain_error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": message}


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Map every failure to a one-line message (or one JSON object with --json) and an exit code."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except Exception as exc:
            found = failure(exc)
            if found is None:
                raise
            data, code, with_code = found
            if kwargs.get("json_output"):
                emit_json(data)
                raise typer.Exit(code) from None
            seq = f" (first bad seq: {data['seq']})" if data.get("seq") is not None else ""
            raise fail(f"{data['code'] + ': ' if with_code else ''}{data['error']}{seq}", code) from None

    return wrapper


def print_receipt(data: dict[str, Any], json_output: bool, what: str) -> None:
    if json_output:
        emit_json(data)
        return
    dup = " (already in the log)" if data.get("duplicate") else ""
    out.print(f"{what}: record {data['seq']} of {data['tree_size']}{dup}; receipt verified")
    for flag in data.get("flags") or []:
        out.print(f"  flag {flag.get('kind')}: {flag.get('message')}")


def keystore_path(home: Path) -> Path:
    return home / "keystore.json"


def open_client(url: str, home: Path, pin: str | None = None) -> PartsLedger:
    return PartsLedger(url, state_path=home / "checkpoints.json", log_key=pin)


def url_slug(url: str) -> str:
    return hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def passphrase(*, new: bool) -> str:
    """The keystore passphrase: from the environment, else a hidden prompt (confirmed for a new keystore)."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        raise InvalidInput(f"no passphrase: set {PASSPHRASE_ENV} or run interactively", code="wrong_passphrase",
                           field="passphrase")
    entered: str = typer.prompt("Keystore passphrase", hide_input=True, confirmation_prompt=new)
    return entered


def unlocked_keystore(home: Path) -> Keystore:
    store = Keystore.open(keystore_path(home))
    store.unlock(passphrase(new=not store.path.exists()))
    return store


def signing_key(home: Path, name: str) -> tuple[KeyPair, str]:
    """The unsealed key called ``name`` and the org it signs for."""
    store = Keystore.open(keystore_path(home))
    info = store.info(name)
    store.unlock(passphrase(new=False))
    return store.get(name), info.org


__all__ = [
    "DEFAULT_HOME",
    "DEFAULT_URL",
    "EXIT_BAD",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "HomeOption",
    "JsonOption",
    "KeyOption",
    "PinOption",
    "UrlOption",
    "console",
    "emit_json",
    "error_json",
    "exit_code_for",
    "fail",
    "failure",
    "keystore_path",
    "open_client",
    "out",
    "passphrase",
    "print_receipt",
    "signing_key",
    "unlocked_keystore",
    "url_slug",
    "user_errors",
]
