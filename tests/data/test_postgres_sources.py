"""A PostgreSQL source on a throwaway cluster (tests/postgres.py): it is read, it is only ever read (a query that
writes is refused by the parser, and the session refuses it again when the parser is switched off), and a
server that does not answer is one line."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from tasks.ingest import ingest_data
from tests.postgres import new_database
from trainflow.errors import DataError
from trainflow.schema import DatasetSchema

ROOT = Path(__file__).resolve().parents[2]
# a query that would change the server or read its files; each must reach neither
WRITING_QUERIES = {
    "delete returning": "DELETE FROM keep RETURNING *",
    "delete in a with": "WITH d AS (DELETE FROM keep RETURNING *) SELECT * FROM d",
    "two statements": "SELECT * FROM keep; DROP TABLE keep",
    "select into": "SELECT * INTO copy FROM keep",
    "insert": "INSERT INTO keep VALUES (2)",
    "copy to a file": "COPY keep TO '/tmp/trainflow-copied.csv'",
    "read a server file": "SELECT pg_read_file('/etc/hostname') AS a",
    "lock rows": "SELECT * FROM keep FOR UPDATE",
    "session back to writable": "SELECT set_config('default_transaction_read_only', 'off', false) AS a",
}


@pytest.fixture()
def source(postgres_server: str, adult_raw: pd.DataFrame) -> str:
    """A database with tables ``keep`` and ``adult``, read through a role that may select and nothing more, as
    a warehouse gives an analyst: no superuser, none of the roles that read or write the server's files."""
    url = new_database(postgres_server)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE keep (a INTEGER)"))
        conn.execute(sa.text("INSERT INTO keep VALUES (1)"))
        conn.execute(sa.text("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reader') "
                             "THEN CREATE ROLE reader LOGIN; END IF; END $$"))
    adult_raw.head(500).astype(object).where(adult_raw.head(500).notna(), None).to_sql("adult", engine, index=False)
    with engine.begin() as conn:
        conn.execute(sa.text("GRANT SELECT, INSERT, DELETE ON keep, adult TO reader"))  # writes: the session stops them
        conn.execute(sa.text("GRANT CREATE ON SCHEMA public TO reader"))
    engine.dispose()
    return url.replace("postgres@", "reader@")


def _unchanged(url: str) -> None:
    engine = sa.create_engine(url.replace("reader@", "postgres@"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM keep")).scalar() == 1
        assert conn.execute(sa.text("SELECT to_regclass('copy')")).scalar() is None
    engine.dispose()
    assert not Path("/tmp/trainflow-copied.csv").exists()


def test_a_postgresql_table_is_read(source: str, adult_schema: DatasetSchema, adult_raw: pd.DataFrame) -> None:
    raw, report = ingest_data(adult_schema, source, "SELECT * FROM adult")
    assert len(raw) == 500 and list(raw.columns) == list(adult_raw.columns)
    assert "reader@127.0.0.1" in str(report["source"].iloc[0])


@pytest.mark.parametrize("payload", sorted(WRITING_QUERIES))
def test_a_query_that_writes_is_refused_before_it_reaches_postgresql(payload: str, source: str,
                                                                      adult_schema: DatasetSchema) -> None:
    with pytest.raises(DataError) as error:
        ingest_data(adult_schema, source, WRITING_QUERIES[payload])
    assert error.value.rule == "sql_read_only" and "\n" not in str(error.value)
    _unchanged(source)


@pytest.mark.parametrize("payload", sorted(WRITING_QUERIES))
def test_the_postgresql_session_is_read_only_when_a_query_gets_past_the_parser(
        payload: str, source: str, adult_schema: DatasetSchema, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainflow import sources

    monkeypatch.setattr(sources, "check_query", lambda *args: None)  # as if the parser missed it
    try:
        ingest_data(adult_schema, source, WRITING_QUERIES[payload])
    except DataError as error:
        assert "\n" not in str(error)
    _unchanged(source)


def test_a_server_that_does_not_answer_is_one_line(adult_schema: DatasetSchema) -> None:
    from deployments.ui import free_port

    port = free_port()  # a loopback port nothing listens on
    started = time.monotonic()
    with pytest.raises(DataError) as error:
        ingest_data(adult_schema, f"postgresql+psycopg://postgres@127.0.0.1:{port}/dw", "SELECT * FROM adult")
    assert "\n" not in str(error.value) and "127.0.0.1" in str(error.value)
    assert time.monotonic() - started < 60
