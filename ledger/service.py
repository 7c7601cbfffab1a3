"""Opening a ledger from settings: database, migrations, keys, genesis.

The log signing key and the operator's first key live in key files in the
data directory (mode 0600), never in the database or in log output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ledger.entries import make_signed_entry
from ledger.errors import LedgerError
from ledger.keys import KeyPair, b64encode, load_or_create_key_file
from ledger.log import ClockPolicy, Ledger
from ledger.storage.db import Database

DEFAULT_ORIGIN = "partsledger.localhost/log"


@dataclass(frozen=True)
class LedgerSettings:
    """Where the ledger lives and what it is called. ``from_env`` reads ``PARTSLEDGER_*``."""

    data_dir: Path = Path("partsledger-data")
    db_url: str | None = None
    origin: str = DEFAULT_ORIGIN
    log_key_file: Path | None = None
    operator_key_file: Path | None = None
    operator_org: str = "partsledger-operator"
    operator_name: str = "partsledger operator"

    @classmethod
    def from_env(cls, **overrides: object) -> LedgerSettings:
        env = os.environ
        values: dict[str, object] = {}
        if "PARTSLEDGER_DATA_DIR" in env:
            values["data_dir"] = Path(env["PARTSLEDGER_DATA_DIR"])
        if "PARTSLEDGER_DB" in env:
            values["db_url"] = env["PARTSLEDGER_DB"]
        if "PARTSLEDGER_ORIGIN" in env:
            values["origin"] = env["PARTSLEDGER_ORIGIN"]
        if "PARTSLEDGER_LOG_KEY" in env:
            values["log_key_file"] = Path(env["PARTSLEDGER_LOG_KEY"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'ledger.sqlite3'}"

    @property
    def log_key_path(self) -> Path:
        return self.log_key_file or self.data_dir / "log.key"

    @property
    def operator_key_path(self) -> Path:
        return self.operator_key_file or self.data_dir / "operator.key"


def open_ledger(settings: LedgerSettings, *, clock_policy: ClockPolicy | None = None,
                database: Database | None = None) -> Ledger:
    """Open (and on first use initialise) the ledger described by ``settings``.

    Runs migrations, loads or creates the log key, and appends the genesis
    record registering the operator if the log is empty.
    """
    db = database or Database(settings.database_url)
    db.migrate()
    log_key = load_or_create_key_file(settings.log_key_path)
    ledger = Ledger(db, origin=settings.origin, log_key=log_key, clock_policy=clock_policy)
    if ledger.size() == 0:
        operator = load_or_create_key_file(settings.operator_key_path)
        ensure_genesis(ledger, operator, org_id=settings.operator_org, name=settings.operator_name)
    return ledger


def ensure_genesis(ledger: Ledger, operator: KeyPair, *, org_id: str, name: str) -> None:
    genesis = make_signed_entry(
        operator, origin=ledger.origin, type="log.genesis", org=org_id,
        body={"org_id": org_id, "name": name, "public_keys": [b64encode(operator.public_key)]},
    )
    try:
        ledger.append(genesis)
    except LedgerError:
        if ledger.size() == 0:  # not a lost race with another process: a real error
            raise


__all__ = ["DEFAULT_ORIGIN", "LedgerSettings", "ensure_genesis", "open_ledger"]
