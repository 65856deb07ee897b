"""Artifact storage: byte backends (local folder, S3) under a content-addressed layer."""
