"""Indexes for the scan path: a part's history by (gtin, serial).

``part_events`` is keyed by (seq, gtin, serial), so reading one part's
history scanned the whole table — a scan's cost grew with the ledger. This
index makes it a range lookup.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_part_events_part", "part_events", ["gtin", "serial", "seq"])


def downgrade() -> None:
    op.drop_index("ix_part_events_part", table_name="part_events")
