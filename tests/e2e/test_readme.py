"""Every shell command in the fenced blocks of README.md and docs/*.md runs here as a reader pastes it, so that
a documented command that breaks fails CI. Its placeholders are made real first (a settings file, a new batch, a run id, a SQLite database,
a churn table); each run writes under a temporary folder (``--artifacts-root``, a registry of its own) and is
kept short (``--time-limit``, no CV refit nor permutation importances), which changes how long it trains, not
whether it runs. A command that cannot run here is skipped with the reason and the test that covers it."""

from __future__ import annotations

import re
import shlex
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from cli.main import main as trainflow

pytestmark = pytest.mark.slow(seconds=115)  # a training run per documented command

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = "20261124-141424-d458df"  # the README's example run id: replaced by a run made here
SKIPPED = {  # a command's first words -> why it does not run here, and what does run it
    "make run": "the quick start; what it runs (trainflow train, default preset, Adult) is test_training_flow.py's "
                "first run, and CI builds the venv it creates",
    "make test": "this suite",
    "make ui": "an interactive server; test_deployments.py serves the same deployments on a real server",
    "make server": "an interactive server; test_work_pool_*.py start the same one on SQLite and on PostgreSQL",
    "PREFECT_API_DATABASE_CONNECTION_URL=": "a server on a reader's PostgreSQL; test_work_pool_postgresql.py starts one on a "
                                           "throwaway cluster",
    "make deploy": "needs a server; test_work_pool_*.py run it against one",
    "make worker": "a long-running worker; test_work_pool_*.py start two",
    "export PREFECT_API_URL": "sets a variable of the reader's shell",
    "export PGPASSWORD": "sets a variable of the reader's shell",
}
NEEDS_POSTGRES = "postgresql+psycopg://"


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands() -> list[str]:
    """The commands of the bash blocks of README.md and the documentation site's pages, continuation lines
    joined, comments dropped, each once."""
    commands: dict[str, None] = {}
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for block in re.findall(r"^ *```(?:bash|sh|shell)\n(.*?)^ *```", text, flags=re.S | re.M):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    commands[shlex.join(words)] = None
    return list(commands)


def _why_skipped(command: str) -> str | None:
    for start, why in SKIPPED.items():
        if command.startswith(start):
            return why
    if NEEDS_POSTGRES in command:
        return "needs a PostgreSQL server; the URL's secrets are resolved and masked in test_credentials.py"
    return None


@pytest.fixture(scope="module")
def reader(prefect_harness, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A folder as a reader's checkout would have it for the README's placeholders, and an earlier run."""
    home = tmp_path_factory.mktemp("reader")
    adult = pd.read_parquet(ROOT / "data" / "sample" / "adult.parquet")
    (home / "my-settings.yaml").write_text("preset: fast\ntrain:\n  families: [lightgbm, logistic]\n")
    adult.sample(2000, random_state=3).to_csv(home / "new-batch.csv", index=False)
    with sqlite3.connect(home / "db.sqlite") as db:
        adult.sample(3000, random_state=4).to_sql("adult", db, index=False)
    (home / "data").mkdir()
    churn = adult.sample(1500, random_state=5).rename(columns={"sex": "gender"})
    churn["churned"] = churn.pop("income").map(lambda v: "yes" if v == ">50K" else "no")
    churn.replace("?", "NA").to_csv(home / "data" / "churn.csv", index=False)
    extra = _speed(home)
    assert trainflow(["train", "--dataset", "breast_cancer", *extra]) == 0
    runs = sorted(p.name for p in (home / "artifacts" / "runs").iterdir())
    return {"home": home, "run_id": runs[-1], "extra": extra}


def _speed(home: Path) -> list[str]:
    """What each training-flow command gets after its own flags: this test's store and registry, and a short
    time limit without evaluate's refit or permutation importances (and so no quality gate: a network cut after
    an epoch or two misses it)."""
    return ["--artifacts-root", str(home / "artifacts"), "--registry.registry-url", f"sqlite:///{home / 'registry.db'}",
            "--time-limit", "1", "--evaluate.cv-folds", "0", "--evaluate.permutation-repeats", "0",
            "--registry.quality-gate", "{}"]


@pytest.mark.parametrize("command", readme_commands())
def test_the_readme_command_runs(command: str, reader: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    why = _why_skipped(command)
    if why:
        pytest.skip(why)
    monkeypatch.chdir(reader["home"])
    words = shlex.split(command.replace(RUN_ID, reader["run_id"]))
    program, args = Path(words[0]).name, words[1:]
    assert program == "trainflow", command
    if "--help" in args:
        with pytest.raises(SystemExit) as shown:
            trainflow(args)
        assert shown.value.code == 0
        return
    if args[0] in ("train", "retrain"):
        args += reader["extra"]
    elif args[0] == "stage":  # its own evaluate and compress settings are what the command shows
        args += reader["extra"][:4]
    elif args[:2] == ["schema", "infer"]:
        args += ["--schemas-dir", str(reader["home"] / "schemas")]
    assert trainflow(args) == 0, command
