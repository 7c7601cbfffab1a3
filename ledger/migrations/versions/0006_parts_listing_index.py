"""An index in the order parts are listed: (commissioned_seq, gtin, serial).

``GET /v1/parts`` pages through parts in commissioning order. Without an index
in that order, every page sorted the whole table again (about 0.1 s a page at
100,000 parts on SQLite, growing with the table); with it, a page reads its
rows in order and skips the offset along the index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An operator may have built it beforehand without holding off writes (CREATE INDEX CONCURRENTLY on
    # PostgreSQL; docs/operations.md): then it is there already.
    op.create_index("ix_parts_listing", "parts", ["commissioned_seq", "gtin", "serial"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_parts_listing", table_name="parts")
