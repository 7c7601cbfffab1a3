"""Rows of one transaction, looked up by primary key without a statement per look-up.

An appending transaction runs many handlers, and each used to ``flush`` the
rows it added (one unit of work and one ``INSERT`` per row) and look rows up
with ``session.get`` (one ``SELECT`` for every row not in the identity map,
after flushing everything pending). :class:`Staging` is the per-transaction
view the state store and the domain repository share instead:

* :meth:`add` hands the row to the session **without flushing**: the rows a
  batch adds are written by the session's single flush at commit (or by an
  autoflush before a query), where SQLAlchemy sends one multi-row ``INSERT``
  per table;
* :meth:`get` answers from the rows this transaction already added or looked
  up (including "not there"), and otherwise loads the row with autoflush off,
  so a look-up never flushes.

That is correct because every projection write in a transaction goes through
:meth:`add`: a row that is not staged and was not found earlier in the same
transaction cannot have appeared since. Queries other than primary-key
look-ups still autoflush first, so they see every staged row.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, and_, bindparam, inspect, select
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import manager_of_class
from sqlmodel import Session, SQLModel

T = TypeVar("T", bound=SQLModel)

_PK_NAMES: dict[type, tuple[str, ...]] = {}
_EXISTS: dict[type, Select[Any]] = {}


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


def new_row(cls: type[T], **values: Any) -> T:
    """``cls(**values)`` for a new table row, without SQLModel's per-attribute constructor.

    A table model's ``__init__`` sets every attribute through SQLAlchemy's and pydantic's
    ``__setattr__`` (tens of microseconds per row); a row that is only going to be inserted needs
    just its values in its ``__dict__`` (which is what the insert reads), missing ones filled with
    the field defaults, and the same pydantic bookkeeping ``__init__`` leaves behind.
    """
    fields = cls.model_fields
    unknown = values.keys() - fields.keys()
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    row: T = manager_of_class(cls).new_instance()
    data = row.__dict__
    for name, field in fields.items():
        if name in values:
            data[name] = values[name]
        elif field.is_required():
            raise TypeError(f"{cls.__name__}: missing required field {name}")
        else:
            data[name] = field.get_default(call_default_factory=True)
    object.__setattr__(row, "__pydantic_fields_set__", set(values))
    object.__setattr__(row, "__pydantic_extra__", None)
    object.__setattr__(row, "__pydantic_private__", None)
    return row


class Staging:
    """Primary-key look-ups and unflushed adds of one session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rows: dict[tuple[type, tuple[Any, ...]], Any] = {}

    def get(self, cls: type[T], pk: Any) -> T | None:
        key = (cls, pk if isinstance(pk, tuple) else (pk,))
        try:
            return self._rows[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
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

    def add(self, row: SQLModel) -> None:
        """Add (or re-add a changed) ``row``; written at the next flush, not now."""
        self.session.add(row)
        cls = type(row)
        pk = tuple(getattr(row, name) for name in _pk_names(cls))
        if None not in pk:  # autoincrement keys are never looked up
            self._rows[(cls, pk)] = row


__all__ = ["Staging", "new_row"]
