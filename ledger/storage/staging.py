"""Rows of one transaction, looked up by primary key without a statement per look-up.

An appending transaction runs many handlers, and each used to ``flush`` the
rows it added (one unit of work and one ``INSERT`` per row) and look rows up
with ``session.get`` (one ``SELECT`` for every row not in the identity map,
after flushing everything pending). :class:`Staging` is the per-transaction
view the state store and the domain repository share instead:

* :meth:`add` keeps a new row **out of the session**: the new rows of a
  transaction are inserted by :meth:`write` (or by the next flush, which a
  query's autoflush or the commit starts), one driver ``executemany`` per
  table (:func:`~ledger.storage.bulk.insert_rows`) instead of the ORM's unit
  of work; rows that were loaded are changed in the session as usual;
* :meth:`get` answers from the rows this transaction already added or looked
  up (including "not there"), and otherwise loads the row with autoflush off,
  so a look-up never flushes; :meth:`prefetch` answers the look-ups a whole
  batch is about to make with one query.

That is correct because every projection write in a transaction goes through
:meth:`add`: a row that is not staged and was not found earlier in the same
transaction cannot have appeared since. Queries other than primary-key
look-ups still autoflush first, so they see every staged row; inserted rows
are then attached to the session, so those queries return the same objects
and later changes to them are written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import Select, Table, and_, bindparam, event, inspect, select
from sqlalchemy.orm import Mapper, configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, manager_of_class
from sqlmodel import Session, SQLModel

from ledger.storage.bulk import existing_keys, insert_rows

T = TypeVar("T", bound=SQLModel)

_PK_NAMES: dict[type, tuple[str, ...]] = {}
_EXISTS: dict[type, Select[Any]] = {}
_AUTOINCREMENT: dict[type, bool] = {}


def _pk_names(cls: type) -> tuple[str, ...]:
    names = _PK_NAMES.get(cls)
    if names is None:
        mapper: Mapper[Any] = inspect(cls)
        names = tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key)
        _PK_NAMES[cls] = names
    return names


def _exists(cls: type) -> Select[Any]:
    """``SELECT <pk> FROM <table> WHERE <pk> = :pk0 [AND ...]`` for ``cls`` (built once)."""
    stmt = _EXISTS.get(cls)
    if stmt is None:
        pk: tuple[Any, ...] = tuple(inspect(cls).primary_key)
        stmt = select(*pk).where(and_(*(c == bindparam(f"pk{i}") for i, c in enumerate(pk))))
        _EXISTS[cls] = stmt
    return stmt


_MISSING = object()
# Per table model: its fields in order as (name, required, default, default factory), read once.
_FIELD_PLANS: dict[type, tuple[tuple[str, bool, Any, Any], ...]] = {}


def _field_plan(cls: type[SQLModel]) -> tuple[tuple[str, bool, Any, Any], ...]:
    plan = _FIELD_PLANS.get(cls)
    if plan is None:
        configure_mappers()  # an instance made without the constructor needs its mapper set up first
        plan = _FIELD_PLANS[cls] = tuple(
            (name, field.is_required(), field.default, field.default_factory)
            for name, field in cls.model_fields.items())
    return plan


def new_row(cls: type[T], **values: Any) -> T:
    """``cls(**values)`` for a new table row, without SQLModel's per-attribute constructor.

    A table model's ``__init__`` sets every attribute through SQLAlchemy's and pydantic's
    ``__setattr__`` (tens of microseconds per row); a row that is only going to be inserted needs
    just its values in its ``__dict__`` (which is what the insert reads), missing ones filled with
    the field defaults, and the same pydantic bookkeeping ``__init__`` leaves behind.
    """
    plan = _field_plan(cls)
    row: T = manager_of_class(cls).new_instance()
    data = row.__dict__
    used = 0
    for name, required, default, factory in plan:
        value = values.get(name, _MISSING)
        if value is not _MISSING:
            data[name] = value
            used += 1
        elif required:
            raise TypeError(f"{cls.__name__}: missing required field {name}")
        else:
            data[name] = factory() if factory is not None else default
    if used != len(values):
        unknown = values.keys() - {name for name, *_ in plan}
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    object.__setattr__(row, "__pydantic_fields_set__", set(values))
    object.__setattr__(row, "__pydantic_extra__", None)
    object.__setattr__(row, "__pydantic_private__", None)
    return row


class Staging:
    """Primary-key look-ups and unwritten adds of one session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rows: dict[tuple[type, tuple[Any, ...]], Any] = {}
        self._new: dict[Table, list[Any]] = {}  # new rows (objects or values) not written yet, by table
        self._generation = 0  # how many times the new rows were written
        self._queued: set[int] = set()  # id() of the rows in ``_new``
        self._listening = False

    def get(self, cls: type[T], pk: Any) -> T | None:
        key = (cls, pk if isinstance(pk, tuple) else (pk,))
        try:
            found = self._rows[key]
        except KeyError:
            pass
        else:
            if type(found) is _Queued:
                return self._materialise(cls, key, found)
            return found  # type: ignore[no-any-return]
        # Bulk appends mostly look up rows that do not exist yet (a new serial, a new key): a Core query
        # answers "not there" for a fraction of what an ORM load costs; only rows found are loaded.
        params = {f"pk{i}": v for i, v in enumerate(key[1])}
        found = self.session.connection().execute(_exists(cls), params).first() is not None
        row = None
        if found:
            with self.session.no_autoflush:
                row = self.session.get(cls, pk)
        self._rows[key] = row
        return row

    def prefetch(self, cls: type[SQLModel], pks: Iterable[Any]) -> None:
        """Answer the coming :meth:`get` calls for ``pks`` with one query per 500 keys instead of one each."""
        wanted = [pk for pk in dict.fromkeys(pk if isinstance(pk, tuple) else (pk,) for pk in pks)
                  if (cls, pk) not in self._rows]
        if not wanted:
            return
        names = _pk_names(cls)
        stmt = _in_statement(cls)
        if len(names) == 1:  # learn which exist with one cheap query; load only those
            table = cls.__table__  # type: ignore[attr-defined]
            column = inspect(cls).primary_key[0].name
            there = existing_keys(self.session.connection(), table, column, [pk[0] for pk in wanted])
            for pk in wanted:
                if pk[0] not in there:
                    self._rows[(cls, pk)] = None
            wanted = [pk for pk in wanted if pk[0] in there]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            # Each key column IN its values: for a composite key that may also load rows that were not
            # asked for (other combinations), which are real rows and as good to know.
            params = {f"pk{i}": list(dict.fromkeys(pk[i] for pk in chunk)) for i in range(len(names))}
            with self.session.no_autoflush:
                rows = self.session.execute(stmt, params).scalars().all()
            for row in rows:
                self._rows[(cls, tuple(getattr(row, name) for name in names))] = row
        for pk in wanted:
            self._rows.setdefault((cls, pk), None)

    def insert(self, cls: type[SQLModel], values: dict[str, Any]) -> None:
        """Queue a new row given as ``values`` (every field of ``cls``), without building a model object.

        For the rows an append adds for every entry (its index row, say): a model object costs more than
        the insert itself. A :meth:`get` of the row later in the transaction still returns a model object
        (built then, or loaded once the row is written), and changes to that object are written.
        """
        names = _field_names(cls)
        if values.keys() != names:
            missing, unknown = sorted(names - values.keys()), sorted(values.keys() - names)
            raise TypeError(f"{cls.__name__}: missing field(s) {missing}, unknown field(s) {unknown}")
        table = cls.__table__  # type: ignore[attr-defined]
        pending = self._new.setdefault(table, [])
        pending.append(values)
        self._listen()
        pk = tuple(values[name] for name in _pk_names(cls))
        self._rows[(cls, pk)] = _Queued(values, self._generation, len(pending) - 1, table)

    def _materialise(self, cls: type[T], key: tuple[type, tuple[Any, ...]], queued: _Queued) -> T | None:
        if queued.generation == self._generation:  # still queued: the object takes the values' place
            row = new_row(cls, **queued.values)
            self._new[queued.table][queued.index] = row
            self._queued.add(id(row))
        else:  # written since: load it like any stored row
            with self.session.no_autoflush:
                row = self.session.get(cls, key[1])  # type: ignore[assignment]
        self._rows[key] = row
        return row

    def _listen(self) -> None:
        if not self._listening:  # read-only sessions never pay for the listeners
            event.listen(self.session, "before_flush", self._before_flush)
            event.listen(self.session, "before_commit", self._before_commit)
            self._listening = True

    def add(self, row: SQLModel) -> None:
        """Add a new row (or re-add a changed one); written at the next flush or :meth:`write`, not now."""
        cls = type(row)
        if instance_state(row).key is None and not _autoincrement(cls):
            if id(row) not in self._queued:
                self._queued.add(id(row))
                self._new.setdefault(cls.__table__, []).append(row)  # type: ignore[attr-defined]
                self._listen()
        else:  # rows loaded or already written (and autoincrement rows): the session writes their changes
            self.session.add(row)
        pk = tuple(getattr(row, name) for name in _pk_names(cls))
        if None not in pk:  # autoincrement keys are never looked up
            self._rows[(cls, pk)] = row

    def write(self, *, attach: bool = True) -> None:
        """Write everything staged: the new rows with one driver ``executemany`` per table, then (by a
        flush) the changes to loaded rows.

        ``attach``: make the inserted rows persistent in the session, so that later changes to them are
        written and queries later in this transaction return these same objects. The last write before a
        commit can skip that.
        """
        self._insert_new(attach=attach)
        self.session.flush()

    def _insert_new(self, *, attach: bool) -> None:
        if not self._new:
            return
        new, self._new = self._new, {}
        self._queued.clear()
        self._generation += 1
        conn = self.session.connection()
        for table, rows in new.items():
            insert_rows(conn, table, [row if type(row) is dict else row.__dict__ for row in rows])
            if attach:
                for row in rows:
                    if type(row) is not dict:
                        make_transient_to_detached(row)
                        self.session.add(row)

    # A session with no changes of its own skips its flush (and the flush events) altogether, so the
    # commit and explicit queries (:meth:`write`) are what guarantee staged rows are written; a flush of
    # changed loaded rows that happens first takes them along.
    def _before_flush(self, _session: Session, _context: Any, _instances: Any) -> None:
        self._insert_new(attach=True)

    def _before_commit(self, _session: Session) -> None:
        self._insert_new(attach=False)


class _Queued:
    """A row queued by :meth:`Staging.insert` as values: where to find them until they are written."""

    __slots__ = ("generation", "index", "table", "values")

    def __init__(self, values: dict[str, Any], generation: int, index: int, table: Table) -> None:
        self.values = values
        self.generation = generation
        self.index = index
        self.table = table


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type[SQLModel]) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(name for name, *_ in _field_plan(cls))
    return names


_IN: dict[type, Select[Any]] = {}


def _in_statement(cls: type) -> Select[Any]:
    """``SELECT <row> FROM <table> WHERE <pk0> IN :pk0 [AND <pk1> IN :pk1 ...]`` for ``cls`` (built once)."""
    stmt = _IN.get(cls)
    if stmt is None:
        pk: tuple[Any, ...] = tuple(inspect(cls).primary_key)
        stmt = select(cls).where(and_(*(c.in_(bindparam(f"pk{i}", expanding=True)) for i, c in enumerate(pk))))
        _IN[cls] = stmt
    return stmt


def _autoincrement(cls: type) -> bool:
    found = _AUTOINCREMENT.get(cls)
    if found is None:
        found = _AUTOINCREMENT[cls] = cls.__table__.autoincrement_column is not None  # type: ignore[attr-defined]
    return found


__all__ = ["Staging", "new_row"]
