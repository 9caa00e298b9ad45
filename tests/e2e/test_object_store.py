"""Artifacts on an object store, as a team keeps them: the S3 API of moto's server on 127.0.0.1, reached through
the same ``s3://`` URI a user passes as ``--artifacts-root`` (Arrow's S3 filesystem, no mock of it). S3 cannot
rename a folder and only knows keys, so datasets and bundles are published object by object; the URI's secret is
a credential like a database password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest
from moto.server import ThreadedMotoServer

from cli.run import run_flow as main
from flows.training import TrainingSettings, training
from tests.e2e.test_credentials import everything_prefect_holds
from trainflow.catalog import ArtifactStore
from trainflow.errors import ArtifactError

BUCKET, KEY, SECRET = "trainflow-test", "AKIDTRAINFLOW", "wJal/rXUtnFEMI+K7MDENG"


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, pafs.S3FileSystem]]:
    """A fresh S3 endpoint with one bucket: its ``host:port`` and a filesystem on it for looking inside."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    fs = pafs.S3FileSystem(access_key=KEY, secret_key=SECRET, endpoint_override=f"{host}:{port}", scheme="http",
                           region="us-east-1", allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    yield f"{host}:{port}", fs
    server.stop()


def _root(endpoint: str, folder: str, secret: str = SECRET.replace("/", "%2F").replace("+", "%2B")) -> str:
    return f"s3://{KEY}:{secret}@{BUCKET}/{folder}?endpoint_override={endpoint}&scheme=http&region=us-east-1"


def _keys(fs: pafs.S3FileSystem, folder: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{folder}", recursive=True))
    return sorted(i.path.removeprefix(f"{BUCKET}/{folder}/") for i in infos if i.type == pafs.FileType.File)


def test_datasets_and_bundles_are_published_on_s3_and_read_back(s3: tuple[str, pafs.S3FileSystem]) -> None:
    endpoint, fs = s3
    store = ArtifactStore(_root(endpoint, "catalog"))
    rows = pd.DataFrame({"a": range(6), "s": list("abcdef")})
    table = store.write_table("r1", "ingest", "raw", rows)
    pd.testing.assert_frame_equal(store.read_table(table), rows)
    with store.open_dataset("r1", "split", "train") as writer:  # parts as Dask workers write them
        dataset = writer.close([store.write_part(writer.folder, k, rows.iloc[k * 3:(k + 1) * 3]) for k in (0, 1)])
    pd.testing.assert_frame_equal(store.read_table(dataset), rows)
    bundle = store.write_bundle("r1", "train", "model", {"model.txt": b"tree", "model.json": b"{}"})
    assert store.read_bundle(bundle) == {"model.txt": b"tree", "model.json": b"{}"}
    assert all(store.is_intact(ref) for ref in (table, dataset, bundle))
    keys = _keys(fs, "catalog")
    assert not [k for k in keys if ".tmp-" in k]  # every temporary object moved into place or removed
    assert {"runs/r1/split/train/_parts.json", "runs/r1/train/model/model.txt"} <= set(keys)
    with pytest.raises(ArtifactError):  # an artifact is never overwritten, on S3 either
        store.write_table("r1", "ingest", "raw", rows)
    assert store.manifest("r1")["name"].tolist() == ["raw", "train", "model"]


def test_the_training_flow_runs_on_s3_and_its_secret_stays_out_of_everything(
        prefect_harness, s3: tuple[str, pafs.S3FileSystem], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    endpoint, fs = s3
    code = main(training, TrainingSettings, argv=[
        "--dataset", "breast_cancer", "--preset", "fast", "--artifacts-root", _root(endpoint, "flow"),
        "--registry.registry-url", f"sqlite:///{tmp_path / 'registry.db'}"])  # the secret typed on the command line
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    assert f"s3://{KEY}:***@{BUCKET}/flow/runs/" in out.out  # where the run went, its secret masked
    keys = _keys(fs, "flow")
    manifest = pd.read_parquet(fs.open_input_file(f"{BUCKET}/flow/{next(k for k in keys if 'manifest' in k)}"))
    assert {"ingest", "validate", "split", "transform", "train", "evaluate", "register"} <= set(manifest["stage"])
    stored = set(keys) | {k.rsplit("/", 1)[0] for k in keys}  # objects, and the folders of bundles' files
    assert [p for p in manifest["path"] if p not in stored] == []  # every artifact the run lists is there
    leaks = {"captured output": SECRET in out.out + out.err, "log records": SECRET in caplog.text,
             "Prefect runs, logs and artifacts": SECRET in everything_prefect_holds(),
             "objects": [k for k in keys if SECRET.encode() in fs.open_input_stream(f"{BUCKET}/flow/{k}").read()],
             "registry": SECRET.encode() in (tmp_path / "registry.db").read_bytes()}
    assert leaks == {"captured output": False, "log records": False, "Prefect runs, logs and artifacts": False,
                     "objects": [], "registry": False}
