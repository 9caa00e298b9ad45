"""The artifact catalog: atomic, never overwrites, hashes what it wrote."""

from pathlib import Path

import pandas as pd
import pytest

from trainflow.catalog import ArtifactStore, new_run_id
from trainflow.errors import ArtifactError


def test_write_read_roundtrip_and_manifest(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    run = new_run_id()
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]}, index=[10, 20, 30])
    ref = store.write_table(run, "ingest", "raw", df)
    assert ref.rows == 3 and ref.path == f"runs/{run}/ingest/raw.parquet"
    back = store.read_table(ref)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert list(back.index) == [10, 20, 30]  # the original row index survives
    m = store.manifest(run)
    assert m[["stage", "name", "rows"]].values.tolist() == [["ingest", "raw", 3]]
    assert m.loc[0, "sha256"] == ref.sha256 and m.loc[0, "bytes"] > 0
    assert not list((tmp_path / "runs" / run / "ingest").glob(".tmp-*"))  # no temporary file left behind


def test_never_overwrites(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    run = new_run_id()
    store.write_table(run, "s", "t", pd.DataFrame({"a": [1]}))
    with pytest.raises(ArtifactError, match="already exists"):
        store.write_table(run, "s", "t", pd.DataFrame({"a": [2]}))
    assert store.read_table(store.find(run, "s", "t"))["a"].tolist() == [1]


def test_tampered_artifact_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.write_file(new_run_id(), "s", "f.txt", b"hello")
    store.local_path(ref).write_bytes(b"hellO")
    with pytest.raises(ArtifactError, match="sha256"):
        store.read_file(ref)


def test_bundle_and_content_addressed_folder(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    run = new_run_id()
    ref = store.write_bundle(run, "train", "model", {"a.txt": b"1", "b.txt": b"2"})
    assert store.read_bundle(ref) == {"a.txt": b"1", "b.txt": b"2"}
    sha1 = store.put_folder("models/x/abc", {"f": b"1"}, exist_ok=True)
    sha2 = store.put_folder("models/x/abc", {"f": b"1"}, exist_ok=True)  # idempotent
    assert sha1 == sha2
    with pytest.raises(ArtifactError):
        store.put_folder("models/x/abc", {"f": b"1"})


def test_find_names_what_a_run_has(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    run = new_run_id()
    store.write_table(run, "split", "train", pd.DataFrame({"a": [1]}))
    with pytest.raises(ArtifactError, match="split/train"):
        store.find(run, "train", "model")


def test_reference_from_other_run_is_listed(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    a, b = new_run_id(), new_run_id()
    ref = store.write_table(a, "split", "test", pd.DataFrame({"a": [1, 2]}))
    other = store.write_table(a, "split", "train", pd.DataFrame({"a": [3, 4, 5]}))
    own = store.write_table(b, "train", "leaderboard", pd.DataFrame({"a": [1]}))
    store.add_references(b, [ref, own, other])
    found = store.find(b, "split", "test")
    assert found.run_id == a and found.sha256 == ref.sha256
    manifest = store.manifest(b)
    assert manifest["name"].tolist() == ["leaderboard", "test", "train"]  # its own artifact is listed once
    assert manifest["source_run"].tolist() == [b, a, a] and manifest["rows"].tolist() == [1, 2, 3]
    assert manifest.set_index("name").loc["train", "bytes"] == (tmp_path / other.path).stat().st_size
    assert len(store.manifest(a)) == 2  # the earlier run is not touched


def test_a_truncated_manifest_is_one_line(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.write_table("20261125-000000-aaaaaa", "split", "train", pd.DataFrame({"a": [1, 2]}))
    manifest = tmp_path / "runs" / "20261125-000000-aaaaaa" / "manifest.parquet"
    manifest.write_bytes(manifest.read_bytes()[:40])
    with pytest.raises(ArtifactError, match="the manifest of run 20261125-000000-aaaaaa is not readable"):
        store.find("20261125-000000-aaaaaa", "split", "train")


def test_a_dataset_is_written_in_parts_by_other_processes_and_read_as_one_table(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    store = ArtifactStore(tmp_path)
    run = new_run_id()
    df = pd.DataFrame({"a": range(10), "b": [None if i % 4 == 0 else i for i in range(10)]},
                      index=range(100, 110))
    with store.open_dataset(run, "split", "train") as writer, ProcessPoolExecutor(2) as pool:
        chunks = [df.iloc[:4], df.iloc[4:5], df.iloc[5:]]  # each part written by another process
        parts = list(pool.map(store.write_part, [writer.folder] * 3, range(3), chunks))
        assert not (tmp_path / f"runs/{run}/split/train").exists()  # nothing visible before close
        ref = writer.close(parts)
    assert ref.kind == "dataset" and ref.rows == 10 and store.is_intact(ref)
    pd.testing.assert_frame_equal(store.read_table(ref), df)  # index labels and dtypes of the whole table
    batches = list(store.read_table_batches(ref, 3))
    assert [len(b) for b in batches] == [3, 1, 1, 3, 2] and {str(b["b"].dtype) for b in batches} == {"float64"}
    pd.testing.assert_frame_equal(pd.concat(batches), df)
    assert store.find(run, "split", "train") == ref
    with pytest.raises(ArtifactError, match="one file"):
        store.read_file(ref)
    part = tmp_path / ref.path / "part-00001.parquet"
    part.write_bytes(part.read_bytes()[:-3] + b"xyz")
    assert not store.is_intact(ref)
    with pytest.raises(ArtifactError, match="sha256"):
        store.read_table(ref)
    with store.open_dataset(run, "split", "test") as writer:  # left without close: nothing remains
        store.write_part(writer.folder, 0, df)
    folder = tmp_path / f"runs/{run}/split"
    assert not list(folder.glob(".tmp-*")) and not (folder / "test").exists()
    with pytest.raises(ArtifactError, match="not a dataset being written"):
        store.write_part(f"runs/{run}/split", 0, df)


def test_text_columns_read_as_dictionaries_hold_the_same_values(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    cities = ["Oslo", None, "Lima", "Oslo", "Oslo", None, "Kyiv", "Lima", "Kyiv", "Oslo", None, "Kyiv"]
    rows = pd.DataFrame({"city": pd.Series(cities, dtype="str"), "n": range(12)}, index=range(100, 112))
    table = store.write_table_batches("r", "s", "t", (rows.iloc[i:i + 5] for i in range(0, 12, 5)))
    with store.open_dataset("r", "s", "d") as writer:  # parts with dictionaries of their own
        dataset = writer.close([store.write_part(writer.folder, k, rows.iloc[k * 6:(k + 1) * 6]) for k in (0, 1)])
    for ref in (table, dataset):
        whole = store.read_table(ref, dictionary=["city", "n"])  # n is no text: read as it is
        assert isinstance(whole["city"].dtype, pd.CategoricalDtype) and whole["n"].dtype == "int64"
        pd.testing.assert_frame_equal(whole.astype({"city": "str"}), store.read_table(ref))
        batches = pd.concat(store.read_table_batches(ref, 4, dictionary=["city"]))
        assert isinstance(batches["city"].dtype, pd.CategoricalDtype)
        pd.testing.assert_frame_equal(batches.astype({"city": "str"}), rows)


def test_a_dataset_is_published_file_by_file_where_folders_cannot_be_moved(tmp_path: Path) -> None:
    """An object store has no folders to rename (Arrow's S3FileSystem refuses, as moto's S3 showed): the parts
    and then the index move one by one, and a failed move leaves nothing under the dataset's name."""
    import fsspec
    import pyarrow.fs as pafs

    class ObjectStoreMoves(pafs.FSSpecHandler):
        fail_on: str | None = None

        def move(self, src: str, dest: str) -> None:
            if self.fs.isdir(src):
                raise OSError(f"cannot move {src}: not a file")
            if self.fail_on and src.endswith(self.fail_on):
                raise OSError(f"lost the connection moving {src}")
            super().move(src, dest)

    store = ArtifactStore(tmp_path)
    handler = ObjectStoreMoves(fsspec.filesystem("file"))
    store.fs = pafs.PyFileSystem(handler)
    rows = pd.DataFrame({"a": range(6), "s": list("abcdef")})
    with store.open_dataset("r", "split", "train") as writer:
        ref = writer.close([store.write_part(writer.folder, k, rows.iloc[k * 3:(k + 1) * 3]) for k in (0, 1)])
    assert store.is_intact(ref) and store.find("r", "split", "train") == ref
    pd.testing.assert_frame_equal(store.read_table(ref), rows)
    assert sorted(p.name for p in (tmp_path / "runs/r/split").iterdir()) == ["train"]  # the temporary folder gone
    handler.fail_on = "_parts.json"
    with pytest.raises(OSError, match="lost the connection"), store.open_dataset("r", "split", "test") as writer:
        writer.close([store.write_part(writer.folder, 0, rows)])
    assert sorted(p.name for p in (tmp_path / "runs/r/split").iterdir()) == ["train"]  # no half of "test" left


def test_an_object_store_uri_keeps_its_options_after_the_path() -> None:
    store = ArtifactStore("s3://bucket/flow?endpoint_override=127.0.0.1:9&scheme=http&region=eu-west-1")  # not reached
    options = "?endpoint_override=127.0.0.1:9&scheme=http&region=eu-west-1"
    assert store.run_uri("r") == f"s3://bucket/flow/runs/r{options}"
    assert store.manifest_uri("r") == f"s3://bucket/flow/runs/r/manifest.parquet{options}"


def test_an_object_store_secret_is_filled_in_where_the_filesystem_opens_and_masked_everywhere_else(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from trainflow.credentials import move_passwords_to_environment

    options = "?endpoint_override=127.0.0.1:9&scheme=http&region=eu-west-1"
    monkeypatch.setenv("TEST_STORE_SECRET_1", "")  # removed again after the test
    typed = f"s3://AKIDEXAMPLE:wJal%2FrXU%2Btn@bucket/flow{options}"  # typed on the command line; not reached
    moved = move_passwords_to_environment({"artifacts_root": typed}, prefix="TEST_STORE_SECRET")["artifacts_root"]
    assert "wJal" not in moved and "${TEST_STORE_SECRET_1}" in moved
    store = ArtifactStore(moved)
    assert store.fs.__reduce__()[1][0]["secret_key"] == "wJal/rXU+tn"  # not the placeholder: S3 would refuse it
    assert store.fs.__reduce__()[1][0]["access_key"] == "AKIDEXAMPLE"
    assert store.__reduce__()[1] == (moved,)  # a Dask worker gets the placeholder and reads its own environment
    for shown in (store.run_uri("r"), ArtifactStore(typed).manifest_uri("r")):  # a secret typed into a UI form
        assert "wJal" not in shown and shown.startswith("s3://AKIDEXAMPLE:***@bucket/flow/runs/r")
    monkeypatch.delenv("TEST_STORE_SECRET_1")
    with pytest.raises(ArtifactError, match="environment variable TEST_STORE_SECRET_1 named in a URL is not set"):
        ArtifactStore(moved)
    with pytest.raises(ArtifactError, match=r"artifacts root s3://AKIDEXAMPLE:\*\*\*@bucket/flow\?.*nowhere"):
        ArtifactStore("s3://AKIDEXAMPLE:wJal%2FrXU%2Btn@bucket/flow?nowhere=1")


def test_batches_are_written_on_the_writers_thread_one_at_a_time_and_a_failed_one_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``write`` hands the batch to the writer's thread and returns (the caller makes the next batch meanwhile);
    the next ``write`` waits for it, so one batch at most is in flight; an error there surfaces in the caller."""
    import threading

    from trainflow.catalog import TableWriter

    store, run = ArtifactStore(tmp_path), new_run_id()
    started, release, threads = threading.Event(), threading.Event(), []
    encode = TableWriter._write

    def slow_write(self: TableWriter, table) -> None:  # noqa: ANN001
        threads.append(threading.current_thread())
        started.set()
        assert release.wait(10)
        if table.column("a")[0].as_py() < 0:
            raise OSError("disk full")
        encode(self, table)

    monkeypatch.setattr(TableWriter, "_write", slow_write)
    with store.open_table(run, "s", "t") as writer:
        writer.write(pd.DataFrame({"a": [1, 2]}))
        assert started.wait(10) and not release.is_set()  # write returned: the batch is still being written
        second = threading.Thread(target=writer.write, args=(pd.DataFrame({"a": [3]}),))
        second.start()
        second.join(0.2)
        assert second.is_alive()  # the next batch waits for the one in flight
        release.set()
        second.join(10)
        ref = writer.close()
    assert threads[0] is not threading.current_thread() and ref.rows == 3
    assert store.read_table(ref)["a"].tolist() == [1, 2, 3]

    with pytest.raises(OSError, match="disk full"), store.open_table(run, "s", "u") as writer:
        writer.write(pd.DataFrame({"a": [1]}))
        writer.write(pd.DataFrame({"a": [-1]}))
        writer.close()
    folder = tmp_path / "runs" / run / "s"
    assert sorted(p.name for p in folder.iterdir()) == ["t.parquet"]  # neither u nor its temporary file


def test_an_abandoned_write_leaves_no_empty_folder_behind(tmp_path: Path) -> None:
    """A command that failed before its run wrote anything (a source that is not UTF-8, read into an open table)
    left an empty run folder each time; folders holding anything stay."""
    store, run = ArtifactStore(tmp_path), new_run_id()
    for kind in ("table", "dataset"):
        with pytest.raises(ValueError), (store.open_table(run, "ingest", "raw") if kind == "table"
                                         else store.open_dataset(run, "ingest", "raw")):
            raise ValueError("the source is not UTF-8")
        assert list((tmp_path / "runs").iterdir()) == [], kind
    store.write_table(run, "ingest", "report", pd.DataFrame({"a": [1]}))
    with pytest.raises(ValueError), store.open_table(run, "split", "train"):
        raise ValueError("later")
    assert sorted(p.name for p in (tmp_path / "runs" / run).iterdir()) == ["ingest", "manifest.parquet"]


def test_runs_gc_sweeps_the_leftovers_of_killed_writes_in_the_runs_it_keeps(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    """A SIGKILL during a write leaves its temporary file; only a later write to the same folder swept it, and a
    killed run's folder is never written again."""
    import os
    import subprocess
    import sys

    from cli.main import main

    store, old, kept = ArtifactStore(tmp_path), "20261201-000000-aaaaaa", "20261202-000000-bbbbbb"
    for run in (old, kept):
        store.write_table(run, "split", "train", pd.DataFrame({"a": [1]}))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / "runs" / kept / "split" / f".tmp-{int(gone.stdout)}-0a1b2c3d-validation.parquet"
    dead_folder = tmp_path / "runs" / kept / "train" / f".tmp-{int(gone.stdout)}-0a1b2c3d-model"
    writing = tmp_path / "runs" / kept / "split" / f".tmp-{os.getpid()}-0a1b2c3d-test.parquet"  # still being written
    dead_folder.mkdir(parents=True)
    for path in (dead, dead_folder / "model.json", writing):
        path.write_bytes(b"half")
    assert main(["runs", "--artifacts-root", str(tmp_path), "gc", "--keep", "1"]) == 0
    assert "deleted 1 run folder(s); kept 1, with 2 leftover(s)" in capsys.readouterr().out
    assert store.runs() == [kept] and not dead.exists() and not dead_folder.exists() and writing.exists()
