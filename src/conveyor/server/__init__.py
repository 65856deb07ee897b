"""The tracking server: a thin HTTP layer (Starlette) over the metadata and artifact stores."""
