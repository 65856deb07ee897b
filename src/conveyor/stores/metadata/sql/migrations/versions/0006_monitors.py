"""Stored monitors, their evaluation results and their incidents.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("project", sa.String(250), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("model", sa.String(250), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("reference", sa.JSON(), nullable=False),
        sa.Column("outliers", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(250), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitors"),
        sa.UniqueConstraint("project", "name", name="uq_monitors_project_name"),
    )
    op.create_table(
        "monitor_results",
        sa.Column("seq", PK, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("monitor_id", sa.String(32), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("labelled_rows", sa.Integer(), nullable=False),
        sa.Column("share_drifted", sa.Float(), nullable=True),
        sa.Column("drifted_columns", sa.JSON(), nullable=False),
        sa.Column("metric_value", sa.Float(), nullable=True),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.Column("outlier_rate", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_monitor_results"),
        sa.ForeignKeyConstraint(
            ["monitor_id"], ["monitors.id"], name="fk_monitor_results_monitor_id_monitors"
        ),
        sa.UniqueConstraint("id", name="uq_monitor_results_id"),
    )
    op.create_index(
        "ix_monitor_results_monitor_id_seq", "monitor_results", ["monitor_id", "seq"]
    )
    op.create_table(
        "monitor_incidents",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("monitor_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("opened_by", sa.String(32), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.Column("resolved_by", sa.String(32), nullable=True),
        sa.Column("deliveries", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_incidents"),
        sa.ForeignKeyConstraint(
            ["monitor_id"], ["monitors.id"], name="fk_monitor_incidents_monitor_id_monitors"
        ),
    )
    op.create_index(
        "ix_monitor_incidents_monitor_id_status", "monitor_incidents", ["monitor_id", "status"]
    )


def downgrade() -> None:
    op.drop_table("monitor_incidents")
    op.drop_table("monitor_results")
    op.drop_table("monitors")
