"""Prefect flows: each wires tasks together and takes one pydantic settings model (a form in the UI)."""
