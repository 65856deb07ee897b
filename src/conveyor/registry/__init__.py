"""The model registry service: packaging, signatures, versions, lineage, evaluation and gates."""
