"""One module per schema change (Alembic revisions), applied in order."""
