"""Storage: SQLModel tables, the database seam, and Alembic migrations.

Only modules in this package import SQLModel/SQLAlchemy; the rest of the
core talks to :class:`ledger.storage.db.Database` and the repositories.
"""
