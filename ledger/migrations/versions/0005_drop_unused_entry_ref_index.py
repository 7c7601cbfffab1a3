"""Drop the ``entry_refs.org_id`` index nothing reads.

The entry index is read by entry id, by sequence number and by signing key
(the key-compromise flags); no query filters it by org. The index cost every
append one more B-tree insertion.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_entry_refs_org_id", table_name="entry_refs")


def downgrade() -> None:
    op.create_index("ix_entry_refs_org_id", "entry_refs", ["org_id"])
