"""Drop the two log_records indexes nothing reads.

``log_records.entry_type`` and ``log_records.org_id`` were indexed, but every
query by type or org goes to the ``entry_refs`` projection; the log table is
read by sequence number and entry id only. The two indexes cost every append
two more B-tree insertions (about a fifth of the batch's insert time).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_log_records_entry_type", table_name="log_records")
    op.drop_index("ix_log_records_org_id", table_name="log_records")


def downgrade() -> None:
    op.create_index("ix_log_records_entry_type", "log_records", ["entry_type"])
    op.create_index("ix_log_records_org_id", "log_records", ["org_id"])
