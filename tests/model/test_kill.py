"""SIGKILL inside write_table, write_bundle and Registry.register, at seeded points: afterwards no partial
artifact is visible, the next write sweeps every .tmp-* leftover, and the registry is consistent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from trainflow.catalog import ArtifactRef, ArtifactStore, folder_digest
from trainflow.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, str(ROOT / "tests" / "model" / "kill_worker.py")]
RUN = "20261125-120000-abcdef"


def worker(tmp: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([*WORKER, str(tmp / "data"), f"sqlite:///{tmp / 'registry.db'}", str(kill_at)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)


def kill_points() -> list[int]:
    return sorted(random.Random(13).sample(range(1, 31), 6))  # checked below to lie within the worker's points


def test_the_worker_has_the_points_the_test_kills_at(tmp_path: Path) -> None:
    done = worker(tmp_path, 0)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) >= max(kill_points())


@pytest.mark.parametrize("kill_at", kill_points())
def test_a_kill_leaves_nothing_half_done(kill_at: int, tmp_path: Path) -> None:
    killed = worker(tmp_path, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    data, store = tmp_path / "data", ArtifactStore(tmp_path / "data")

    # whatever is visible is whole: every manifest entry matches its hash, every table reads, every bundle is complete
    if (data / "runs" / RUN).exists():
        for row in store.manifest(RUN).to_dict("records"):
            assert store.is_intact(ArtifactRef(run_id=RUN, stage=row["stage"], name=row["name"], kind=row["kind"],
                                               path=row["path"], sha256=row["sha256"])), row["path"]
        for table in (data / "runs" / RUN).rglob("*.parquet"):
            if not table.name.startswith(".tmp-"):
                pq.read_table(table)
        model = data / "runs" / RUN / "train" / "model"
        assert not model.exists() or sorted(p.name for p in model.iterdir()) == ["model.json", "weights.bin"]

    # the next writes to the same folders sweep every leftover of the killed process
    store.write_table(RUN, "split", "again", pd.DataFrame({"a": [1]}))
    store.write_table(RUN, "train", "again", pd.DataFrame({"a": [1]}))
    (tmp_path / "data" / "registry").mkdir(exist_ok=True)
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        tables = registry.tables()
        versions = tables["model_versions"]
        assert versions["version"].is_unique and (versions["version"].tolist() == list(range(1, len(versions) + 1)))
        for row in versions.to_dict("records"):  # every committed version has its files, whole
            folder = Path(registry.root) / "models" / "m" / row["sha256"]
            assert folder_digest({p.name: p.read_bytes() for p in folder.iterdir()}) == row["sha256"]
        aliases = tables["model_aliases"]
        assert set(aliases["version"]) <= set(versions["version"])
        latest = tables["registered_models"]
        assert latest.empty or int(latest["latest_version"].iloc[0]) == len(versions)
        info = registry.register("m", {"model.json": b'{"v": 9}'}, RUN, "logistic", "binary", {"roc_auc": 0.9}, {})
        assert info["version"] == len(versions) + 1
    finally:
        registry.close()
    leftovers = [str(p) for p in tmp_path.rglob(".tmp-*")]
    assert leftovers == []
