"""Run keys are never handed out twice on SQLite (AUTOINCREMENT).

Without it SQLite gives a new row the largest key plus one, so deleting the newest
run freed its key for the next run, and a process that still remembered the deleted
run's key (every store caches run id -> key) could write points into the new run.
PostgreSQL's identity columns never reuse a value, so only SQLite changes. The table
is rebuilt (SQLite cannot add AUTOINCREMENT in place) with foreign keys checked off
by the migration runner, and checked again before the change commits.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    with op.batch_alter_table("runs", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass
    broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"rebuilding runs broke {len(broken)} foreign key(s), first: {broken[0]}")
    # Continue after the largest key ever used, not only the largest left.
    bind.exec_driver_sql(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'runs', COALESCE(MAX(pk), 0) FROM runs "
        "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'runs')"
    )


def downgrade() -> None:
    pass  # keys that are never reused are still valid keys
