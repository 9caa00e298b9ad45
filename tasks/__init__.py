"""Stages of the trainflow training lifecycle: one module per stage, pure compute plus a thin Prefect task."""
