"""The registry database's schema under Alembic: ``versions/`` holds one migration per schema change, applied
in order when a registry is opened (``trainflow.registry.Registry``) or by ``trainflow registry upgrade``."""
