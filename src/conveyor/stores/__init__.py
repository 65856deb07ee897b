"""Stores: metadata (runs, registry...) and artifacts (content-addressed bytes)."""
