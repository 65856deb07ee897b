"""Projects as every domain store meets them: found by name, created on first use, audited once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from conveyor.core.ids import new_id, now_ms
from conveyor.stores.metadata.sql.audit import append_event
from conveyor.stores.metadata.sql.bulk import insert_or_skip
from conveyor.stores.metadata.sql.schema import projects


def project_row(conn: Connection, name: str) -> Any:
    return conn.execute(select(projects).where(projects.c.name == name)).first()


def ensure_project(conn: Connection, name: str) -> Any:
    """The row of project ``name``, created (with its ``project.create`` event) if missing.

    Two writers may create the same project at once: the loser's insert is a no-op
    and only the winner's creation is audited.
    """
    row = project_row(conn, name)
    if row is None:
        created = conn.execute(
            insert_or_skip(conn, projects, [projects.c.name]).values(
                id=new_id(), name=name, description="", created_at=now_ms())
        ).rowcount
        row = project_row(conn, name)
        if created:
            append_event(conn, action="project.create", object_kind="project", object_id=row.id, project=name)
    return row
