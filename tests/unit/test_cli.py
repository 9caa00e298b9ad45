"""Flow command line: flags, a config file under them, one-line errors, and --help for every setting."""

import os
import subprocess
import sys
import json
from pathlib import Path

import pytest

from cli.config import parse_settings
from cli.run import run_flow as main
from flows.training import TrainingSettings
from trainflow.errors import TrainflowError
from trainflow.schema import load_schema

ROOT = Path(__file__).resolve().parents[2]


def test_flags_and_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("dataset: wine\nseed: 3\ntrain:\n  families: [logistic]\n  n_jobs: 1\nsplit:\n  test_fraction: 0.2\n")
    s = parse_settings(TrainingSettings, ["--config", str(cfg), "--seed", "9", "--split.validation-fraction", "0.1"],
                       "x")
    assert (s.dataset, s.seed) == ("wine", 9)  # the flag wins over the file
    assert s.train.families == ["logistic"] and s.train.n_jobs == 1
    assert (s.split.test_fraction, s.split.validation_fraction) == (0.2, 0.1)  # both sources merged per field
    assert s.evaluate.cv_folds == 5  # untouched defaults stay


def test_json_config_and_invalid_value(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"train": {"families": ["svm", "lightgbm"]}}')
    assert parse_settings(TrainingSettings, ["--config", str(cfg)], "x").train.families == ["svm", "lightgbm"]
    with pytest.raises(TrainflowError, match="split.test_fraction"):
        parse_settings(TrainingSettings, ["--split.test-fraction", "0.9"], "x")


LAUGHS = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                   + [f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]" for i in range(1, 9)]
                   + ["ingest: {missing_markers: *i}"])  # 9 ** 9 values once expanded


@pytest.mark.parametrize("case, text, says", [
    ("python tag", 'dataset: !!python/object/apply:os.system ["touch {marker}"]\n',
     "is not valid YAML: could not determine a constructor for the tag"),
    ("billion laughs", LAUGHS, "expands to more than 100,000 values"),
    ("huge", "seed: 1\n" + "# padding\n" * 200_000, "is larger than 1024 KiB"),
    ("not a mapping", "- a\n- b\n", "must hold a mapping of settings, found list"),
])
def test_a_hostile_config_file_is_one_line_at_once(case: str, text: str, says: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def flow_fn(settings: TrainingSettings) -> dict:
        raise AssertionError("the flow started")

    marker = tmp_path / "ran"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text.replace("{marker}", str(marker)))
    assert main(flow_fn, TrainingSettings, argv=["--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: config file {cfg}") and says in err[0], err
    assert not marker.exists()


def test_hostile_setting_names_make_one_short_printable_line(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Names from a config file reach the error line: a line break, a terminal escape or 10,000 characters in one,
    or hundreds of them, still make one short line that says what it found."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"seed": "x", "bad\nname\u001b[31m": 1, "y" * 10_000: 2,
                               **{f"key{i}": i for i in range(300)}}))
    assert main(lambda settings: {}, TrainingSettings, argv=["--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and len(err) < 1500, err
    assert "unknown setting 'bad name\\x1b[31m'" in err and "… (10,000 characters)" in err
    assert "and 297 more" in err and "invalid settings: seed: " in err


@pytest.mark.parametrize("case, says", [("proc", "cannot be written"), ("a file", "cannot be written"),
                                        ("symlink loop", "cannot be used")])
def test_an_artifacts_root_that_cannot_hold_runs_is_one_line(case: str, says: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    def flow_fn(settings: TrainingSettings) -> dict:
        raise AssertionError("the flow started")

    (tmp_path / "afile").write_text("x")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    root = {"proc": "/proc", "a file": str(tmp_path / "afile"), "symlink loop": str(tmp_path / "loop1")}[case]
    assert main(flow_fn, TrainingSettings, argv=["--artifacts-root", root]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: artifacts root") and says in err[0], err


def test_help_lists_every_setting() -> None:
    trainflow = Path(sys.executable).with_name("trainflow")  # the console command pyproject installs
    out = subprocess.run([str(trainflow), "train", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: trainflow train")
    flat = " ".join(out.stdout.split())
    for block, model in TrainingSettings.model_fields.items():
        sub = getattr(model.annotation, "model_fields", None)
        names = [f"{block}.{f}" for f in sub] if sub else [block]
        for name in names:
            assert f"--{name.replace('_', '-')}" in flat, name
    assert "(default: adult)" in flat and "--config" in flat


@pytest.mark.parametrize("flags, expected", [
    (["--dataset", "no_such_dataset"], "no schema for dataset 'no_such_dataset'"),
    (["--tune.family", "no_such_family"], "unknown family 'no_such_family'"),
    (["--tune.family", "ensemble"], "tune.family: 'ensemble' has no search space (tunable: lightgbm,"),
    (["--ingest.source", "sklearn:no_such_set"], "unknown scikit-learn dataset 'no_such_set'"),
    (["--train.dask-address", "tcp://10.0.0.5:8786"], "train.dask_address 'tcp://10.0.0.5:8786' is not a Dask "
                                                       "scheduler this deployment trusts"),
    (["--tune.dask-address", "tcp://evil.example:8786"], "list it in TRAINFLOW_DASK_SCHEDULERS"),
    (["--compute.engine", "dask", "--compute.dask-address", "tcp://u:pw@10.0.0.5:8786"],
     "compute.dask_address 'tcp://u:***@10.0.0.5:8786' is not a Dask scheduler"),
    (["--ingest.source", "x" * 5000 + ".csv"], "cannot be looked up (File name too long)"),  # was a traceback
    (["--seed", "1", "y" * 10_000], "… (10,0"),  # argparse's words hold the stray value: clipped
])
def test_mistakes_are_refused_before_the_flow_runs(flags: list[str], expected: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def flow_fn(settings: TrainingSettings) -> dict:
        raise AssertionError("the flow started")

    assert main(flow_fn, TrainingSettings, argv=flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0] and len(err[0]) < 1000, err


def test_inference_takes_the_same_compute_block_and_refuses_an_untrusted_scheduler(
        capsys: pytest.CaptureFixture[str]) -> None:
    from flows.inference import InferenceSettings

    def flow_fn(settings: InferenceSettings) -> dict:
        raise AssertionError("the flow started")

    flags = ["--compute.engine", "dask", "--compute.dask-address", "tcp://u:pw@10.0.0.5:8786"]
    assert main(flow_fn, InferenceSettings, argv=flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compute.dask_address 'tcp://u:***@10.0.0.5:8786' is not a Dask scheduler" in err[0]


def test_the_trainflow_command_infers_a_schema_and_reads_the_registry(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("trainflow")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=ROOT, timeout=120)

    (tmp_path / "shop.csv").write_text("visits,plan,churned\n" + "".join(
        f"{i},{'ab'[i % 2]},{i % 3 == 0}\n" for i in range(60)))
    inferred = run("schema", "infer", "--name", "shop", "--source", str(tmp_path / "shop.csv"), "--label", "churned",
                   "--schemas-dir", str(tmp_path))
    assert inferred.returncode == 0 and load_schema("shop", str(tmp_path)).label == "churned"
    missing = run("registry", "--registry-url", f"sqlite:///{tmp_path / 'r.db'}", "list", "shop")
    assert missing.returncode == 2 and "no database at" in missing.stderr and not (tmp_path / "r.db").exists()
    from trainflow.registry import Registry

    Registry(f"sqlite:///{tmp_path / 'r.db'}").close()
    empty = run("registry", "--registry-url", f"sqlite:///{tmp_path / 'r.db'}", "list", "shop")
    assert empty.returncode == 2 and "model 'shop' has no versions" in empty.stderr


@pytest.mark.parametrize("case, says", [
    ("garbage", "cannot be used: DatabaseError: file is not a database"),
    ("nonsense", "is not a database URL SQLAlchemy can use"),
    ("read-only", "model 'shop' has no versions"),  # read through a mode=ro URI: an answer, not a traceback
    ("missing", "no database at"),
])
def test_the_registry_command_answers_a_bad_registry_in_one_line(case: str, says: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main as trainflow
    from trainflow.registry import Registry

    (tmp_path / "garbage.db").write_text("not a database")
    Registry(f"sqlite:///{tmp_path / 'r.db'}").close()
    url = {"garbage": f"sqlite:///{tmp_path / 'garbage.db'}", "nonsense": "nonsense",
           "read-only": f"sqlite:///file:{tmp_path / 'r.db'}?mode=ro&uri=true",
           "missing": f"sqlite:///{tmp_path / 'none.db'}"}[case]
    assert trainflow(["registry", "--registry-url", url, "list", "shop"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(("error: registry", "error: model")), err
    assert says in err[0] and not (tmp_path / "none.db").exists()


def test_a_row_filter_that_would_run_code_is_refused_before_the_flow_runs(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    def flow_fn(settings: TrainingSettings) -> dict:
        raise AssertionError("the flow started")

    marker = tmp_path / "ran"
    attack = f"age.__class__.__init__.__globals__['sys'].modules['os'].system('touch {marker}') == 0"
    assert main(flow_fn, TrainingSettings, argv=["--ingest.query", attack]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset 'adult': row filter" in err[0] and "is not allowed" in err[0]
    assert not marker.exists()


def test_a_sql_query_that_writes_is_refused_before_the_flow_runs(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def flow_fn(settings: TrainingSettings) -> dict:
        raise AssertionError("the flow started")

    attached = tmp_path / "x.db"
    flags = ["--ingest.source", f"sqlite:///{tmp_path / 'a.db'}", "--ingest.query", f"ATTACH '{attached}' AS x"]
    assert main(flow_fn, TrainingSettings, argv=flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: dataset 'adult': the SQL query is ATTACH, not a SELECT: a source is only read "
                   "[rule: sql_read_only]"]
    assert not attached.exists()


@pytest.mark.parametrize("case, says", [
    ("corrupt", "cannot be used: DatabaseError: file is not a database"),
    ("missing folder", "does not exist"),
    ("no driver", "no database driver"),
])
def test_a_registry_that_cannot_be_used_is_refused_before_training(case: str, says: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def flow_fn(settings: TrainingSettings) -> dict:
        raise AssertionError("the flow started")

    url = {"corrupt": f"sqlite:///{tmp_path / 'registry.db'}", "missing folder": f"sqlite:///{tmp_path / 'no' / 'r.db'}",
           "no driver": "mysql+nosuchdriver://trainer:hunter2@127.0.0.1:9/ml"}[case]
    (tmp_path / "registry.db").write_bytes(b"not a database, but 4 KB of it " * 128)
    assert main(flow_fn, TrainingSettings, argv=["--registry.registry-url", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: registry ") and says in err[0] and "hunter2" not in err[0]
    assert not (tmp_path / "no").exists()


def test_a_listed_scheduler_is_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainflow.cluster import SCHEDULERS_ENV, check_scheduler
    from trainflow.errors import TrainflowError

    check_scheduler("local", "train.dask_address")  # a cluster of this machine's own processes
    with pytest.raises(TrainflowError, match="is not a Dask scheduler") as refused:
        check_scheduler("tcp://user:secret@10.0.0.5:8786", "train.dask_address")
    assert "secret" not in str(refused.value) and "user:***@10.0.0.5" in str(refused.value)  # a password never shown
    monkeypatch.setenv(SCHEDULERS_ENV, "tcp://10.0.0.6:8786, tcp://10.0.0.5:8786")
    check_scheduler("tcp://10.0.0.5:8786", "train.dask_address")


def test_the_command_starts_prefect_servers_without_telemetry_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import prefect_defaults

    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    prefect_defaults()  # offline, each heartbeat the server fails to send is an ERROR line among the run's
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "true")
    prefect_defaults()
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "true"  # the user's own setting stands


def test_flow_heartbeats_only_where_a_lasting_server_watches() -> None:
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    from cli.run import _heartbeats_where_watched

    with temporary_settings(updates={PREFECT_API_URL: None}), _heartbeats_where_watched():
        assert get_current_settings().flows.heartbeat_frequency is None  # the temporary server stops with us
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api", "flows.heartbeat_frequency": 60}), \
            _heartbeats_where_watched():
        assert get_current_settings().flows.heartbeat_frequency == 60
