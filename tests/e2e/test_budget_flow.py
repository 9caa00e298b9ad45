"""A whole run under `--time-limit`, from the command line: it still ends with a registered model, and the log,
the leaderboard and a progress artifact say what the limit cut. The limit is so small that every deadline has
passed when it is checked, so what is cut does not depend on the machine's load."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from cli.run import run_flow as main
from flows.training import TrainingSettings, training


def test_a_run_under_a_tiny_time_limit_ends_and_says_what_it_cut(prefect_harness, run_logs_at_info, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str],
                                                               caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "data"
    argv = ["--dataset", "breast_cancer", "--artifacts-root", str(root), "--time-limit", "0.01",
            "--tune.n-trials", "3", "--compress.enabled", "false", "--evaluate.permutation-repeats", "0",
            "--registry.registry-url", f"sqlite:///{tmp_path / 'registry.db'}"]
    with caplog.at_level(logging.INFO):
        assert main(training, TrainingSettings, argv=argv) == 0
    assert "breast_cancer v1" in capsys.readouterr().out
    run = next((root / "runs").iterdir())
    board = pd.read_parquet(run / "train" / "leaderboard.parquet").set_index("family")
    assert board.loc["lightgbm", "budget"].endswith("rounds cut by the time limit in 5 of 5 folds and the refit")
    skipped = board.drop(["lightgbm", "ensemble"])
    assert skipped["budget"].str.startswith("skipped: over budget").all() and skipped["score"].isna().all()
    assert set(skipped.index) == {"lightgbm_xt", "catboost", "logistic", "random_forest"}
    lines = caplog.text
    assert "budget: time limit 0 s for tune + train" in lines and "no trial finished within the time limit" in lines
    assert "train: lightgbm fold 1/5" in lines and "train: logistic skipped: over budget (the time limit was reached)" in lines

    from prefect.artifacts import Artifact

    progress = Artifact.get("time-budget")
    assert progress.type == "progress" and "after train" in progress.description
