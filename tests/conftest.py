"""Shared fixtures. Set PARTSLEDGER_TEST_DB to a PostgreSQL URL to run every
database test against PostgreSQL (each test gets its own schema); otherwise
each test gets a fresh SQLite file."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ledger.log import Ledger
from ledger.service import LedgerSettings, open_ledger
from ledger.storage.db import Database, normalize_url
from tests.support import World

PG_URL = os.environ.get("PARTSLEDGER_TEST_DB")


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{normalize_url(base)}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def db_url_factory(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty database URLs of the configured kind."""
    schemas: list[str] = []
    counter = iter(range(1_000_000))

    def make() -> str:
        if PG_URL:
            schema = f"t_{uuid.uuid4().hex[:16]}"
            engine = create_engine(normalize_url(PG_URL))
            with engine.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            engine.dispose()
            schemas.append(schema)
            return _pg_schema_url(PG_URL, schema)
        return f"sqlite:///{tmp_path / f'ledger-{next(counter)}.sqlite3'}"

    yield make
    if schemas:
        engine = create_engine(normalize_url(PG_URL or ""))
        with engine.begin() as conn:
            for schema in schemas:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()


@pytest.fixture
def db_url(db_url_factory: Callable[[], str]) -> str:
    return db_url_factory()


@pytest.fixture
def ledger_factory(tmp_path: Path, db_url_factory: Callable[[], str]) -> Iterator[Callable[..., Ledger]]:
    opened: list[Ledger] = []

    def make(**kwargs: object) -> Ledger:
        data_dir = tmp_path / f"data-{len(opened)}"
        settings = LedgerSettings(data_dir=data_dir, db_url=db_url_factory(), origin="test.partsledger/log")
        ledger = open_ledger(settings, **kwargs)  # type: ignore[arg-type]
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.db.dispose()


@pytest.fixture
def ledger(ledger_factory: Callable[..., Ledger]) -> Ledger:
    return ledger_factory()


@pytest.fixture
def world(ledger: Ledger, tmp_path: Path) -> World:
    return World.open(ledger, tmp_path / "data-0" / "operator.key")


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    db.migrate()
    yield db
    db.dispose()
