"""Alembic's environment for the registry: migrations run on the connection ``trainflow.registry`` passes in
(``config.attributes["connection"]``), inside its transaction; there is no ini file and no URL here."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)  # SQLite alters a table by copying it
with context.begin_transaction():  # joins the caller's transaction: the whole upgrade commits or none of it
    context.run_migrations()
