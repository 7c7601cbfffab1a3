"""The domain's projections (entry index, parts, installations, recalls, batteries, corrections, grants, claims)
and the off-log vault and document store.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entry_refs",
        sa.Column("entry_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False, index=True),
        sa.Column("kid", sa.String(32), nullable=False, index=True),
        sa.Column("logged", sa.String(32), nullable=False),
        sa.Column("gtin", sa.String(14), nullable=True),
        sa.Column("serial", sa.String(20), nullable=True),
    )
    op.create_table(
        "parts",
        sa.Column("gtin", sa.String(14), primary_key=True),
        sa.Column("serial", sa.String(20), primary_key=True),
        sa.Column("lot", sa.String(20), nullable=True, index=True),
        sa.Column("category", sa.String(32), nullable=False, index=True),
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("brand_owner", sa.String(64), nullable=False, index=True),
        sa.Column("commissioned_by", sa.String(64), nullable=False, index=True),
        sa.Column("commissioned_seq", sa.BigInteger(), nullable=False),
        sa.Column("commissioned_kid", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("custodian", sa.String(64), nullable=True, index=True),
        sa.Column("pending_to", sa.String(64), nullable=True),
        sa.Column("vehicle", sa.String(64), nullable=True, index=True),
        sa.Column("installed_by", sa.String(64), nullable=True),
        sa.Column("installed_seq", sa.BigInteger(), nullable=True),
        sa.Column("first_installed_at", sa.String(32), nullable=True),
        sa.Column("warranty_months", sa.Integer(), nullable=False),
        sa.Column("suspect", sa.Boolean(), nullable=False),
        sa.Column("predecessor", sa.String(40), nullable=True),
        sa.Column("successor", sa.String(40), nullable=True),
        sa.Column("soh_pct", sa.Integer(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "part_events",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("gtin", sa.String(14), primary_key=True),
        sa.Column("serial", sa.String(20), primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False, index=True),
        sa.Column("logged", sa.String(32), nullable=False),
        sa.Column("state_after", sa.String(16), nullable=False),
        sa.Column("authorization", sa.String(16), nullable=True),
        sa.Column("grant_id", sa.String(64), nullable=True),
    )
    op.create_table(
        "installations",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("gtin", sa.String(14), nullable=False, index=True),
        sa.Column("serial", sa.String(20), nullable=False, index=True),
        sa.Column("lot", sa.String(20), nullable=True, index=True),
        sa.Column("vehicle", sa.String(64), nullable=False, index=True),
        sa.Column("workshop", sa.String(64), nullable=False, index=True),
        sa.Column("site", sa.String(13), nullable=True),
        sa.Column("logged", sa.String(32), nullable=False),
        sa.Column("authorization", sa.String(16), nullable=False),
        sa.Column("grant_id", sa.String(64), nullable=True),
        sa.Column("removed_seq", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "recalls",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("oem", sa.String(64), nullable=False, index=True),
        sa.Column("gtin", sa.String(14), nullable=False, index=True),
        sa.Column("lots", sa.JSON(), nullable=False),
        sa.Column("serial_ranges", sa.JSON(), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=True),
        sa.Column("set_seq", sa.BigInteger(), nullable=False),
        sa.Column("cleared_seq", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "battery_reports",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("gtin", sa.String(14), nullable=False, index=True),
        sa.Column("serial", sa.String(20), nullable=False, index=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("soh_pct", sa.Integer(), nullable=False),
        sa.Column("cycles", sa.Integer(), nullable=True),
        sa.Column("logged", sa.String(32), nullable=False),
    )
    op.create_table(
        "corrections",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("corrects", sa.String(64), nullable=False, index=True),
        sa.Column("corrected_seq", sa.BigInteger(), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=False),
    )
    op.create_table(
        "grants",
        sa.Column("grant_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("grantor", sa.String(64), nullable=False, index=True),
        sa.Column("grantee", sa.String(64), nullable=False, index=True),
        sa.Column("activities", sa.JSON(), nullable=False),
        sa.Column("gtin_prefixes", sa.JSON(), nullable=False),
        sa.Column("brands", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("countries", sa.JSON(), nullable=False),
        sa.Column("sites", sa.JSON(), nullable=False),
        sa.Column("technicians", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.String(32), nullable=False),
        sa.Column("valid_until", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("issued_seq", sa.BigInteger(), nullable=False),
        sa.Column("changed_seq", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "grant_changes",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("grant_id", sa.String(64), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
    )
    op.create_table(
        "claims",
        sa.Column("claim_id", sa.String(64), primary_key=True),
        sa.Column("gtin", sa.String(14), nullable=False, index=True),
        sa.Column("serial", sa.String(20), nullable=False, index=True),
        sa.Column("lot", sa.String(20), nullable=True, index=True),
        sa.Column("workshop", sa.String(64), nullable=False, index=True),
        sa.Column("oem", sa.String(64), nullable=False, index=True),
        sa.Column("vehicle", sa.String(64), nullable=True),
        sa.Column("failure_code", sa.String(32), nullable=False),
        sa.Column("documents", sa.JSON(), nullable=False),
        sa.Column("amount", sa.JSON(), nullable=True),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("held_reasons", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("reason_codes", sa.JSON(), nullable=False),
        sa.Column("filed_seq", sa.BigInteger(), nullable=False),
        sa.Column("decided_seq", sa.BigInteger(), nullable=True),
        sa.Column("paid_seq", sa.BigInteger(), nullable=True),
        sa.Column("paid", sa.JSON(), nullable=True),
    )
    op.create_table(
        "vault_vehicles",
        sa.Column("lookup", sa.String(64), primary_key=True),
        sa.Column("vehicle_key", sa.LargeBinary(), nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "documents",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for table in ("documents", "vault_vehicles", "claims", "grant_changes", "grants", "corrections",
                  "battery_reports", "recalls", "installations", "part_events", "parts", "entry_refs"):
        op.drop_table(table)
