"""Names that become paths are checked in one place, and no path leaves its root, symbolic links included."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from cli.run import run_flow as main
from flows.training import TrainingSettings
from trainflow.catalog import ArtifactStore
from trainflow.names import UnsafeName, check_name
from trainflow.registry import Registry
from trainflow.schema import load_schema
from cli.main import main as trainflow

ESCAPES = ["../x", "../../../tmp/x", "/etc/passwd", "a/b", "a\\b", "x\x00y", "", ".", "..", "-flag", "a" * 129,
           "ok\n", "name with space"]


@pytest.mark.parametrize("name", ESCAPES)
def test_a_name_that_is_not_one_plain_path_component_is_refused(name: str) -> None:
    with pytest.raises(UnsafeName, match="is not a plain name"):
        check_name(name, "model name")


@pytest.mark.parametrize("name", ["adult", "digits-0-4", "v1.2_x", "A" * 128])
def test_plain_names_pass(name: str) -> None:
    assert check_name(name) == name


def test_settings_refuse_path_names_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValidationError, match="model name"):
        TrainingSettings.model_validate({"registry": {"model_name": "../../x"}})
    with pytest.raises(ValidationError, match="dataset name"):
        TrainingSettings.model_validate({"dataset": "/etc/passwd"})

    def flow_fn(settings: TrainingSettings) -> dict:
        raise AssertionError("the flow started")

    assert main(flow_fn, TrainingSettings, argv=["--registry.model-name", "../../../x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "registry.model_name" in err[0] and "is not a plain name" in err[0]


def test_schema_names_stay_in_their_folder(tmp_path: Path) -> None:
    outside = tmp_path / "x.json"
    source = tmp_path / "rows.csv"
    source.write_text("a,b\n1,2\n3,4\n")
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    assert trainflow(["schema", "infer", "--name", "../x", "--source", str(source), "--schemas-dir", str(schemas)]) == 2
    assert not outside.exists()
    with pytest.raises(UnsafeName):
        load_schema("../schemas/adult", schemas)
    os.symlink(tmp_path / "elsewhere.json", schemas / "linked.json")  # a link out of the folder
    with pytest.raises(UnsafeName, match="outside"):
        load_schema("linked", schemas)


def test_the_catalog_and_the_registry_do_not_follow_a_link_out_of_their_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    (root / "runs").mkdir(parents=True)
    os.symlink(outside, root / "runs" / "20261125-000000-abcdef")
    store = ArtifactStore(root)
    with pytest.raises(UnsafeName, match="outside"):
        store.write_table("20261125-000000-abcdef", "ingest", "raw", pd.DataFrame({"a": [1]}))
    with pytest.raises(UnsafeName):
        store.write_table("..", "ingest", "raw", pd.DataFrame({"a": [1]}))
    (tmp_path / "registry").mkdir()
    registry = Registry(f"sqlite:///{tmp_path / 'registry' / 'registry.db'}")
    try:
        with pytest.raises(UnsafeName):
            registry.register("../../escaped", {"model.json": b"{}"}, "run", "logistic", "binary", {}, {})
        (registry_models := tmp_path / "registry" / "models").mkdir(parents=True, exist_ok=True)
        os.symlink(outside, registry_models / "linked")
        with pytest.raises(UnsafeName, match="outside"):
            registry.register("linked", {"model.json": b"{}"}, "run", "logistic", "binary", {}, {})
    finally:
        registry.close()
    assert list(outside.iterdir()) == [] and not (tmp_path / "escaped").exists()
