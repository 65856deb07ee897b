"""Blob references of model packages and dataset versions, for reading blobs through the server.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_refs",
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("project", sa.String(250), nullable=False),
        sa.PrimaryKeyConstraint("digest", "kind", "project", name="pk_blob_refs"),
    )


def downgrade() -> None:
    op.drop_table("blob_refs")
