"""The indexes the read paths depend on exist after migration, and the queries use them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect

from ledger.part_reads import PART_FIELDS
from ledger.storage.db import Database
from ledger.storage.domain_repo import DomainRepo


def test_the_parts_listing_reads_its_index_in_order(database: Database) -> None:
    """``GET /v1/parts`` pages in commissioning order; an index in that order spares each page a sort of the
    whole table (on SQLite the plan shows it; on PostgreSQL the planner's choice depends on the table's size)."""
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(database.reader).get_indexes("parts")}
    assert indexes["ix_parts_listing"] == ["commissioned_seq", "gtin", "serial"]
    if not database.is_sqlite:
        return
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(database.reader, "before_cursor_execute", capture)
    try:
        with database.read() as session:
            assert DomainRepo(session).list_part_rows(PART_FIELDS, offset=5, limit=10) == []  # GET /v1/parts
    finally:
        event.remove(database.reader, "before_cursor_execute", capture)
    [(statement, parameters)] = [(s, p) for s, p in seen if "FROM parts" in s]
    with database.reader.connect() as conn:
        plan = " | ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                                                         parameters))
    assert "ix_parts_listing" in plan and "TEMP B-TREE" not in plan, plan



def test_an_index_built_ahead_of_migration_0006_is_kept(db_url: str) -> None:
    """docs/operations.md: on a large log an operator builds the listing index beforehand (on PostgreSQL
    without holding off writes); migration 0006 then finds it and goes on."""
    from alembic import command
    from sqlalchemy import text

    from ledger.storage.migrate import alembic_config

    db = Database(db_url)
    try:
        cfg = alembic_config()
        with db.writer.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0005")
        if db.is_sqlite:
            with db.writer.begin() as conn:
                conn.execute(text("CREATE INDEX ix_parts_listing ON parts (commissioned_seq, gtin, serial)"))
        else:  # CONCURRENTLY cannot run inside a transaction block
            with db.writer.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("CREATE INDEX CONCURRENTLY ix_parts_listing ON parts "
                                  "(commissioned_seq, gtin, serial)"))
        db.migrate()
        with db.read() as session:
            assert session.execute(text("SELECT version_num FROM alembic_version")).scalar_one() >= "0006"
        indexes = {ix["name"]: ix["column_names"] for ix in inspect(db.reader).get_indexes("parts")}
        assert indexes["ix_parts_listing"] == ["commissioned_seq", "gtin", "serial"]
    finally:
        db.dispose()
