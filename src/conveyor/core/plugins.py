"""The backend table: URI scheme -> implementation, loaded lazily.

Adding a backend is adding a row here and a module, never editing call sites.
A backend whose optional dependency is missing raises :class:`MissingExtra`
naming the exact ``pip install`` to run.

Example::

    store_cls = load_backend("metadata", "postgresql")   # imports on first use
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from conveyor.core.errors import InvalidArgument, MissingExtra

PACKAGE = "conveyor-mlops"


@dataclass(frozen=True)
class Backend:
    target: str  # "package.module:Attribute"
    extra: str | None = None  # the pip extra that provides its dependencies
    requires: tuple[str, ...] = ()  # modules that must import


BACKENDS: dict[str, dict[str, Backend]] = {
    "metadata": {
        "sqlite": Backend("conveyor.stores.metadata.sql.store:SqlMetadataStore"),
        "postgresql": Backend(
            "conveyor.stores.metadata.sql.store:SqlMetadataStore", "postgres", ("psycopg",)
        ),
        "http": Backend("conveyor.stores.metadata.rest:RestMetadataStore", "server", ("httpx",)),
        "https": Backend("conveyor.stores.metadata.rest:RestMetadataStore", "server", ("httpx",)),
    },
    "artifacts": {
        "file": Backend("conveyor.stores.artifacts.local:LocalBackend"),
        "s3": Backend("conveyor.stores.artifacts.s3:S3Backend", "s3", ("boto3",)),
        "http": Backend("conveyor.stores.artifacts.http:HttpBackend", "server", ("httpx",)),
        "https": Backend("conveyor.stores.artifacts.http:HttpBackend", "server", ("httpx",)),
    },
}


def load_backend(kind: str, scheme: str) -> Any:
    """Import and return the class registered for ``scheme`` under ``kind``."""
    table = BACKENDS.get(kind)
    if table is None:
        raise InvalidArgument(f"unknown backend kind {kind!r}", field="kind")
    backend = table.get(scheme)
    if backend is None:
        known = ", ".join(f"{s}:" for s in sorted(table))
        raise InvalidArgument(
            f"no {kind} backend for scheme {scheme!r}; known schemes: {known}", field="uri"
        )
    for module in backend.requires:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(
                f"the {scheme}: {kind} backend needs {module!r}: "
                f"pip install '{PACKAGE}[{backend.extra}]'"
            ) from None
    module_name, _, attr = backend.target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
