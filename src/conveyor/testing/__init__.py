"""Test support: pytest fixtures and contract suites every backend must pass."""
