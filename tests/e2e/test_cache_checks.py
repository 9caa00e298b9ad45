"""A cached stage is trusted only while the artifacts it points at are intact: a changed or deleted file makes
the stage run again, and old runs can be deleted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from prefect import flow

from tasks.ingest import ingest
from tasks.split import SplitSettings, split
from trainflow.cache import run_checked
from trainflow.catalog import ArtifactStore, new_run_id
from cli.main import main as trainflow
from trainflow.schema import load_schema


@flow
def ingest_and_split(root: str) -> dict:
    run_id = new_run_id()
    schema = load_schema("breast_cancer")
    return run_checked(split, root, run_id, schema, ingest(root, run_id, schema), SplitSettings(), 7)


def intact_manifest(store: ArtifactStore, run_id: str) -> bool:
    listed = store.manifest(run_id)
    return all(store._hash_file(p)[0] == sha for p, sha in zip(listed["path"], listed["sha256"]))


def test_a_changed_or_deleted_artifact_makes_the_cached_stage_run_again(prefect_harness, tmp_path: Path) -> None:
    root = str(tmp_path / "data")
    store = ArtifactStore(root)
    first = ingest_and_split(root)
    assert ingest_and_split(root)["train"].run_id == first["train"].run_id  # a plain cache hit

    path = Path(root) / first["train"].path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped after the run wrote it
    path.write_bytes(bytes(data))
    third = ingest_and_split(root)
    assert third["train"].run_id not in (first["train"].run_id,) and store.is_intact(third["train"])
    assert intact_manifest(store, third["train"].run_id)  # the new run lists no file that fails its hash
    assert ingest_and_split(root)["train"].run_id == third["train"].run_id  # the refreshed entry is used again

    assert trainflow(["runs", "--artifacts-root", root, "gc", "--keep", "1"]) == 0  # every run folder but the newest
    assert len(store.runs()) == 1
    fifth = ingest_and_split(root)  # the cached entry points into a deleted run: recomputed, not an error
    assert store.is_intact(fifth["train"]) and store.is_intact(fifth["test"])


def test_a_killed_writes_leftovers_are_swept_by_the_next_write(tmp_path: Path) -> None:
    import pandas as pd

    store = ArtifactStore(tmp_path)
    store.write_table("20261125-000000-aaaaaa", "split", "train", pd.DataFrame({"a": [1]}))
    folder = tmp_path / "runs" / "20261125-000000-aaaaaa" / "split"
    gone = _a_finished_pid()
    stale, fresh = folder / f".tmp-{gone}-deadbeef-test.parquet", folder / f".tmp-{os.getpid()}-cafebabe-test.parquet"
    stale.write_bytes(b"half a file, its writer killed")
    fresh.write_bytes(b"a write of this process, still going on")
    store.write_table("20261125-000000-aaaaaa", "split", "test", pd.DataFrame({"a": [2]}))
    assert not stale.exists() and fresh.exists()


def _a_finished_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
