"""Blob references per version (deleted with it) and upload receipts (proof of possession).

``blob_refs`` gains ``source``, the id of the model version or dataset version
that references the blob. The table only mirrors manifests, so it is rebuilt
rather than converted: the server indexes every version again the first time a
read misses (``server/blob_index.py``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("blob_refs")
    op.create_table(
        "blob_refs",
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("project", sa.String(250), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("digest", "kind", "project", "source", name="pk_blob_refs"),
    )
    op.create_index("ix_blob_refs_source", "blob_refs", ["source"])
    op.create_table(
        "blob_receipts",
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("principal", sa.String(250), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest", "principal", name="pk_blob_receipts"),
    )


def downgrade() -> None:
    op.drop_table("blob_receipts")
    op.drop_index("ix_blob_refs_source", table_name="blob_refs")
    op.drop_table("blob_refs")
    op.create_table(
        "blob_refs",
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("project", sa.String(250), nullable=False),
        sa.PrimaryKeyConstraint("digest", "kind", "project", name="pk_blob_refs"),
    )
