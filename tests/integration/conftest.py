"""Fixtures of the integration tests."""

from automation_kit import bikes, world  # noqa: F401  (fixtures)
