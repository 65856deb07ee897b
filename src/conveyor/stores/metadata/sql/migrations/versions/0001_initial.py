"""Initial schema: projects, runs, params, tags, metrics, latest metrics, artifacts, lineage.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    op.create_table(
        "runs",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=False),
        sa.Column("end_time", sa.BigInteger(), nullable=True),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("user", sa.String(250), nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=True),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_runs_project_id_projects"),
        sa.PrimaryKeyConstraint("pk", name="pk_runs"),
        sa.UniqueConstraint("id", name="uq_runs_id"),
    )
    op.create_index("ix_runs_project_id_start_time", "runs", ["project_id", "start_time"])
    op.create_index("ix_runs_status_heartbeat_at", "runs", ["status", "heartbeat_at"])
    op.create_index("ix_runs_parent_id", "runs", ["parent_id"])
    for name in ("params", "tags"):
        op.create_table(
            name,
            sa.Column("run_pk", PK, nullable=False),
            sa.Column("key", sa.String(250), nullable=False),
            sa.Column("value", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(["run_pk"], ["runs.pk"], name=f"fk_{name}_run_pk_runs"),
            sa.PrimaryKeyConstraint("run_pk", "key", name=f"pk_{name}"),
        )
        op.create_index(f"ix_{name}_key_value", name, ["key", "value"])
    op.create_table(
        "metrics",
        sa.Column("run_pk", PK, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
    )
    op.create_index("ix_metrics_run_pk_key_step", "metrics", ["run_pk", "key", "step"])
    op.create_table(
        "latest_metrics",
        sa.Column("run_pk", PK, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("run_pk", "key", name="pk_latest_metrics"),
    )
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])
    op.create_table(
        "artifacts",
        sa.Column("run_pk", PK, nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_pk"], ["runs.pk"], name="fk_artifacts_run_pk_runs"),
        sa.PrimaryKeyConstraint("run_pk", "path", name="pk_artifacts"),
    )
    op.create_index("ix_artifacts_digest", "artifacts", ["digest"])
    op.create_table(
        "lineage_edges",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("src_kind", sa.String(32), nullable=False),
        sa.Column("src_id", sa.String(255), nullable=False),
        sa.Column("dst_kind", sa.String(32), nullable=False),
        sa.Column("dst_id", sa.String(255), nullable=False),
        sa.Column("relation", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_edges"),
        sa.UniqueConstraint(
            "src_kind", "src_id", "dst_kind", "dst_id", "relation",
            name="uq_lineage_edges_src_kind_src_id_dst_kind_dst_id_relation",
        ),
    )
    op.create_index("ix_lineage_edges_dst_kind_dst_id", "lineage_edges", ["dst_kind", "dst_id"])


def downgrade() -> None:
    for table in ("lineage_edges", "artifacts", "latest_metrics", "metrics", "tags", "params", "runs", "projects"):
        op.drop_table(table)
