"""A password in a database URL never reaches a log line, an error, a Prefect parameter, state or artifact,
a file the run writes, or the registry: one run that fails on a URL typed with its password, one that succeeds
on a URL naming its secret by environment variable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from cli.run import run_flow as main
from flows.training import TrainingSettings, training
from trainflow.sources import read_source

SECRET = "S3cr3t-7f9c2e"


def everything_prefect_holds() -> str:
    """What the Prefect UI can show: every flow run (parameters, state message), task run state, log, artifact."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=200)
        parts = [r.model_dump_json() for r in runs]
        parts += [t.model_dump_json() for t in client.read_task_runs(limit=200)]
        parts += [log.model_dump_json() for log in client.read_logs(limit=200)]
        parts += [a.model_dump_json() for a in client.read_artifacts(limit=200)]
    return "\n".join(parts)


def files_holding(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_no_password_is_ever_shown_or_stored(prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    work = tmp_path / "work"
    work.mkdir()
    common = ["--dataset", "breast_cancer", "--artifacts-root", str(work / "data"), "--no-tune.enabled",
              "--evaluate.cv-folds", "0", "--train.families", '["logistic"]',
              "--registry.registry-url", f"sqlite:///{work / 'registry.db'}"]

    # typed with its password, on a database nobody can reach: the run fails with one line
    typed = f"postgresql+psycopg://trainer:{SECRET}@127.0.0.1:9/warehouse"
    assert main(training, TrainingSettings, argv=[*common, "--ingest.source", typed, "--ingest.query",
                                                  "SELECT * FROM rows"]) == 2
    failed = capsys.readouterr()
    assert failed.err.strip().splitlines()[-1].startswith("error: dataset 'breast_cancer': ")
    assert "postgresql+psycopg://trainer:***@127.0.0.1:9/warehouse" in failed.err

    # naming its secret, an environment variable (here: the database file's folder), on a database that works
    folder = tmp_path / SECRET
    folder.mkdir()
    data = read_source("sklearn:breast_cancer", "breast_cancer")  # the rows as the bundled source gives them
    with sqlite3.connect(folder / "rows.db") as conn:
        data.to_sql("rows", conn, index=False)
    monkeypatch.setenv("ROWS_FOLDER", str(folder))
    assert main(training, TrainingSettings, argv=[*common, "--ingest.source", "sqlite:///${ROWS_FOLDER}/rows.db",
                                                  "--ingest.query", "SELECT * FROM rows"]) == 0
    succeeded = capsys.readouterr()
    assert "breast_cancer v1" in succeeded.out

    leaks = {"captured output": SECRET in failed.out + failed.err + succeeded.out + succeeded.err,
             "log records": SECRET in caplog.text,
             "Prefect runs, logs and artifacts": SECRET in everything_prefect_holds(),
             "files": files_holding(work, SECRET)}
    assert leaks == {"captured output": False, "log records": False, "Prefect runs, logs and artifacts": False,
                     "files": []}
    report = pd.read_parquet(next((work / "data" / "runs").glob("*/ingest/ingest_report.parquet")))
    assert report.loc[0, "source"] == "sqlite:///${ROWS_FOLDER}/rows.db"  # what was asked, not what it resolved to


def test_placeholders_name_environment_variables_and_secret_blocks(prefect_harness,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret

    from trainflow.credentials import mask, move_passwords_to_environment, redact, resolve
    from trainflow.errors import TrainflowError

    Secret(value="p@ss/w:rd").save("warehouse", overwrite=True)
    monkeypatch.setenv("PGUSER_PASSWORD", "p@ss/w:rd")
    for url in ("postgresql+psycopg://bob:${secret:warehouse}@db/dw", "postgresql+psycopg://bob:${PGUSER_PASSWORD}@db/dw"):
        resolved = resolve(url)
        assert resolved == "postgresql+psycopg://bob:p%40ss%2Fw%3Ard@db/dw"  # percent-encoded in the password
        assert mask(resolved) == mask(url) == "postgresql+psycopg://bob:***@db/dw"
        assert redact("FATAL: password 'p@ss/w:rd' rejected", url) == "FATAL: password '***' rejected"
    with pytest.raises(TrainflowError, match="environment variable NOT_SET_ANYWHERE named in a URL is not set"):
        resolve("postgresql://bob:${NOT_SET_ANYWHERE}@db/dw")
    with pytest.raises(TrainflowError, match="Secret block 'no-such-block'"):
        resolve("postgresql://bob:${secret:no-such-block}@db/dw")
    moved = move_passwords_to_environment({"a": {"url": "postgresql://bob:hunter2@db/dw"}, "b": ["plain"]})
    assert moved == {"a": {"url": "postgresql://bob:${TRAINFLOW_PASSWORD_1}@db/dw"}, "b": ["plain"]}
    assert resolve(moved["a"]["url"]) == "postgresql://bob:hunter2@db/dw"


@pytest.mark.parametrize("typed, masked", [
    ("postgresql://user@127.0.0.1:1/db?password=" + SECRET, "postgresql://user@127.0.0.1:1/db?password=***"),
    ("postgresql://user@127.0.0.1/db?sslmode=require&PWD=" + SECRET, "postgresql://user@127.0.0.1/db?sslmode=require&PWD=***"),
    ("postgresql://user:" + SECRET + "@127.0.0.1:abc/db", "postgresql://user:***@127.0.0.1:abc/db"),  # no port: unparsable
    ("mssql+pyodbc://u@dsn?token=" + SECRET + ";x=1", "mssql+pyodbc://u@dsn?token=***;x=1"),
])
def test_passwords_in_query_parameters_and_unparsable_urls_are_masked_and_moved(typed: str, masked: str) -> None:
    from trainflow.credentials import mask, move_passwords_to_environment, redact, resolve

    assert mask(typed) == masked and SECRET not in mask(typed)
    moved = move_passwords_to_environment({"url": typed})["url"]
    assert SECRET not in moved and "${TRAINFLOW_PASSWORD_1}" in moved and resolve(moved) == typed
    assert redact(f"connection to server failed: password {SECRET} rejected", moved) == \
        "connection to server failed: password *** rejected"


@pytest.mark.parametrize("source", [f"postgresql://user@127.0.0.1:9/db?password={SECRET}",
                                    f"postgresql://user:{SECRET}@127.0.0.1:abc/db"])
def test_a_query_parameter_password_or_a_bad_url_fails_in_one_masked_line(prefect_harness, tmp_path: Path,
                                                                        source: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--dataset", "breast_cancer", "--artifacts-root", str(tmp_path / "data"), "--no-tune.enabled",
            "--registry.registry-url", f"sqlite:///{tmp_path / 'registry.db'}", "--ingest.source", source,
            "--ingest.query", "SELECT * FROM rows"]
    assert main(training, TrainingSettings, argv=argv) == 2
    said = capsys.readouterr()
    assert said.err.strip().splitlines()[-1].startswith("error: dataset 'breast_cancer': ")
    assert SECRET not in said.out + said.err and SECRET not in everything_prefect_holds()
    assert files_holding(tmp_path, SECRET) == []


def test_a_tuning_storage_resolves_its_placeholders_and_a_bad_one_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def flow_fn(settings: TrainingSettings) -> dict:
        from tasks.tune import open_study

        assert "${" in settings.tune.storage  # what the flow is given names its secret
        open_study(settings.tune.storage, "s", "tpe", {}, "maximize", 0, "median")  # resolved where it is opened
        return {}

    monkeypatch.setenv("TUNING_FOLDER", str(tmp_path))
    registry = ["--registry.registry-url", f"sqlite:///{tmp_path / 'registry.db'}"]
    assert main(flow_fn, TrainingSettings, argv=["--tune.storage", "sqlite:///${TUNING_FOLDER}/optuna.db",
                                                 *registry], printer=lambda summary: None) == 0
    assert (tmp_path / "optuna.db").is_file()
    for bad in (f"sqlite://u:{SECRET}@/{tmp_path / 'x.db'}", f"nosuchdb://u:{SECRET}@host/x"):  # the first: a KeyError
        assert main(flow_fn, TrainingSettings, argv=["--tune.storage", bad, *registry]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: tune.storage ") and "cannot be used" in err[0], err
        assert SECRET not in err[0] and ":***@" in err[0]
