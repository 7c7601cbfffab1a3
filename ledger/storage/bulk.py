"""Multi-row inserts handed straight to the database driver.

An appending transaction writes thousands of rows (records, Merkle nodes,
projection rows). Through SQLAlchemy's ``execute(insert(table), rows)`` every
row's parameters are rebuilt by the compiler (about 5 µs a row), and through
the ORM's unit of work every object is also sorted, collected and registered
(about 30 µs). :func:`insert_rows` compiles ``INSERT INTO table (all columns)``
once per table and dialect, applies the column types' own bind processors
(JSON serialisation, for instance) and gives the driver one ``executemany``:
the statement and the values are exactly what SQLAlchemy would have sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, LargeBinary, Table, insert


@dataclass(frozen=True)
class _Compiled:
    sql: str
    keys: tuple[str, ...]  # column keys in parameter order
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, bind processor)
    positional: bool


_CACHE: dict[tuple[Table, str], _Compiled] = {}


def _compiled(table: Table, conn: Connection) -> _Compiled:
    dialect = conn.dialect
    key = (table, dialect.name)
    found = _CACHE.get(key)
    if found is not None:
        return found
    columns = list(table.columns)
    compiled = insert(table).compile(dialect=dialect, column_keys=[c.key for c in columns])
    positional = bool(compiled.positional)
    keys = tuple(compiled.positiontup or ()) if positional else tuple(c.key for c in columns)
    by_key = {c.key: c for c in columns}
    processors = []
    for position, name in enumerate(keys):
        column_type = by_key[name].type
        if isinstance(column_type, LargeBinary):
            continue  # both drivers take bytes as they are (the processor would only wrap them)
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((position, process))
    found = _Compiled(str(compiled), keys, tuple(processors), positional)
    _CACHE[key] = found
    return found


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``INSERT`` ``rows`` (every column of ``table`` given, by column key) in one driver ``executemany``."""
    if not rows:
        return
    compiled = _compiled(table, conn)
    keys = compiled.keys
    try:
        params: list[Any] = [[row[k] for k in keys] for row in rows]
    except KeyError as exc:
        raise ValueError(f"insert into {table.name}: no value for column {exc.args[0]}") from None
    for position, process in compiled.processors:
        for values in params:
            values[position] = process(values[position])
    if conn.dialect.name == "postgresql" and len(params) > 1:
        _copy_rows(conn, table, keys, params)
        return
    if compiled.positional:
        params = [tuple(values) for values in params]
    else:
        params = [dict(zip(keys, values, strict=True)) for values in params]
    conn.exec_driver_sql(compiled.sql, params)




def insert_tuples(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """:func:`insert_rows` for rows given as value tuples in the order of ``columns`` (every column of
    ``table``): what an append builds for every entry (records, Merkle nodes) skips a dict per row."""
    if not rows:
        return
    compiled = _compiled(table, conn)
    if tuple(columns) != compiled.keys or compiled.processors:
        insert_rows(conn, table, [dict(zip(columns, row, strict=True)) for row in rows])
        return
    if conn.dialect.name == "postgresql" and len(rows) > 1:
        _copy_rows(conn, table, compiled.keys, rows)
        return
    if compiled.positional:
        conn.exec_driver_sql(compiled.sql, [tuple(row) for row in rows])
    else:
        conn.exec_driver_sql(compiled.sql, [dict(zip(columns, row, strict=True)) for row in rows])


def column_order(table: Table, conn: Connection) -> tuple[str, ...]:
    """The column order :func:`insert_tuples` takes without re-ordering for ``conn``'s dialect."""
    return _compiled(table, conn).keys


def _copy_rows(conn: Connection, table: Table, keys: tuple[str, ...], params: Sequence[Sequence[Any]]) -> None:
    """PostgreSQL: the rows through ``COPY ... FROM STDIN`` on the transaction's own connection (psycopg
    writes each row in C; an ``executemany`` of the same rows adapts every value in Python)."""
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(table.c[key].name) for key in keys)
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(f"COPY {quote(table.name)} ({columns}) FROM STDIN") as copy:
        for values in params:
            copy.write_row(values)


def existing_keys(conn: Connection, table: Table, column: str, values: Sequence[Any]) -> set[Any]:
    """Which of ``values`` are in ``table.column`` (a key column): one driver query per 500 values.

    A batch mostly asks about keys that do not exist yet; asking the driver directly costs a fraction of
    an ORM (or expanding Core) ``IN`` over the same values.
    """
    found: set[Any] = set()
    if not values:
        return found
    placeholder = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    quote = conn.dialect.identifier_preparer.quote
    # Names from the table definition, quoted by the dialect; the values are bound parameters.
    head = f"SELECT {quote(column)} FROM {quote(table.name)} WHERE {quote(column)} IN "  # noqa: S608
    for start in range(0, len(values), 500):
        chunk = list(values[start:start + 500])
        sql = head + "(" + ", ".join([placeholder] * len(chunk)) + ")"
        found.update(row[0] for row in conn.exec_driver_sql(sql, tuple(chunk)))
    return found


__all__ = ["column_order", "existing_keys", "insert_rows", "insert_tuples"]
