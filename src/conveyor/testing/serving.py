"""Serve an ASGI app for a test (see :mod:`conveyor.serving.background`)."""

from conveyor.serving.background import free_port, running

__all__ = ["free_port", "running"]
