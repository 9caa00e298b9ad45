"""The artifact catalog: one place that names, writes and reads every artifact of every run.

Layout under the root: ``runs/<run-id>/<stage>/<name>.parquet`` (tables), ``<name>.<ext>`` (files),
``<name>/`` (bundles such as a model; datasets: a table as Parquet parts written by many processes), and
``runs/<run-id>/manifest.parquet``. Writes go to a
temporary name and are renamed into place, so a killed run leaves no half-written artifact; an
existing artifact is never overwritten, so no run can change another run.

The root is a local path or any URI that ``pyarrow.fs.FileSystem.from_uri`` understands
(``s3://``, ``gs://``, ``hdfs://``...). A URI's secret is best left to the environment the store's library
reads (``AWS_SECRET_ACCESS_KEY``...); one in the URI (``s3://KEY:SECRET@bucket/...``) may be a placeholder
(``${NAME}``, ``${secret:NAME}``, see :mod:`trainflow.credentials`), filled in only where the filesystem is
opened, and every URI the store shows has its secret masked. Between Prefect tasks travel
:class:`ArtifactRef` values, never DataFrames.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import secrets
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from trainflow.credentials import mask, redact, resolve
from trainflow.errors import ArtifactError, TrainflowError, clipped
from trainflow.names import check_name, inside

PARTS_INDEX = "_parts.json"  # a dataset's parts (file, sha256, rows, bytes); "_": Parquet readers skip it
MANIFEST_COLUMNS = ["stage", "name", "kind", "path", "rows", "bytes", "sha256", "created", "source_run"]
_CHUNK = 8 << 20
STALE_TMP_SECONDS = 3600
# the folders this process has written temporary files into (filesystem, absolute folder): what an interrupted
# command sweeps of its own unfinished writes on the way out (remove_unfinished_writes)
_WROTE_IN: dict[tuple[str, str], pafs.FileSystem] = {}
_WROTE_IN_LOCK = threading.Lock()


def remove_unfinished_writes() -> int:
    """Delete this process's ``.tmp-<pid>-*`` files and folders, the writes an interrupt cut short; returns how
    many. Finished artifacts stay: they are whole, and a later run's cache may reuse them."""
    mine, removed = f".tmp-{os.getpid()}-", 0
    with _WROTE_IN_LOCK:
        folders = [(fs, folder) for (_, folder), fs in _WROTE_IN.items()]
    for fs, folder in folders:
        with suppress(OSError, pa.ArrowException):
            for info in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
                if info.base_name.startswith(mine):
                    (fs.delete_dir if info.type == pafs.FileType.Directory else fs.delete_file)(info.path)
                    removed += 1
    return removed


class ArtifactRef(BaseModel):
    """A pointer to one stored artifact; small, hashable, and what Prefect tasks pass on.

    Attributes:
        run_id: The run that wrote it.
        stage: Stage folder (``ingest``, ``split``...).
        name: Artifact name inside the stage.
        kind: ``table`` (Parquet), ``dataset`` (a table as a folder of Parquet parts and their list,
            ``_parts.json``), ``file`` or ``bundle`` (a folder of files).
        path: Path relative to the store root.
        sha256: Content hash (for a bundle: hash of its files' names and hashes; for a dataset: of its list of
            parts, which holds each part's hash).
        rows: Row count for tables.
    """

    model_config = ConfigDict(frozen=True)

    run_id: str
    stage: str
    name: str
    kind: str
    path: str
    sha256: str
    rows: int | None = None


def new_run_id() -> str:
    """Return a sortable, unique run id such as ``20261124-140312-a1b2c3``."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def folder_digest(files: dict[str, bytes]) -> str:
    """sha256 of a folder of files: of their names and hashes, in name order."""
    digest = hashlib.sha256()
    for fname in sorted(files):
        digest.update(f"{fname}:{hashlib.sha256(files[fname]).hexdigest()}\n".encode())
    return digest.hexdigest()


def row_index(table: pa.Table, offset: int = 0) -> tuple[pa.Table, pa.ChunkedArray]:
    """A table written from a DataFrame, split into its data columns and each row's index label: the stored
    index column, or the labels of a range index (also for a table pandas never wrote). ``offset``: the
    table is a batch of a larger one starting at that row."""
    (entry,) = (table.schema.pandas_metadata or {}).get("index_columns") or [{"kind": "range", "start": 0, "step": 1}]
    if isinstance(entry, str):
        return table.drop_columns([entry]), table[entry]
    start, step = entry["start"] + offset * entry["step"], entry["step"]
    return table, pa.chunked_array([np.arange(start, start + step * table.num_rows, step, dtype=np.int64)])


def with_row_index(table: pa.Table, index: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``table`` with ``index`` as its pandas index, as ``Table.from_pandas`` stores a DataFrame whose index is
    not a plain range: ``to_pandas`` (and ``ArtifactStore.read_table``) give each row its label back. The
    pandas metadata is pandas' own, made from the table's first zero rows."""
    empty = table.slice(0, 0).to_pandas()
    empty.index = pd.Index(index.slice(0, 0).to_pandas())
    meta = pa.Table.from_pandas(empty).schema.metadata
    return table.append_column("__index_level_0__", index).replace_schema_metadata(meta)


def _batches(parquet: pq.ParquetFile, batch_rows: int) -> Iterator[pa.Table]:
    for batch in parquet.iter_batches(batch_size=batch_rows):
        yield pa.Table.from_batches([batch], parquet.schema_arrow)


def _parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How the catalog writes Parquet: zstd, and statistics (min, max, missing values) of every column but text
    ones, whose minimum and maximum cost a third of a text-heavy table's write and are read by nothing here
    (:func:`_with_nulls` needs the missing values of integer and boolean columns alone)."""
    text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
    return {"compression": "zstd",
            "write_statistics": [f.name for f in schema if not any(is_text(f.type) for is_text in text)]}


def _with_nulls(parquet: pq.ParquetFile) -> set[str]:
    """The integer and boolean top-level columns of a Parquet file holding a missing value, from its row
    groups' statistics (a column without statistics is read to count)."""
    meta, out = parquet.metadata, set()
    typed = {f.name for f in parquet.schema_arrow if pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)}
    for j in range(meta.num_columns):
        name = meta.schema.column(j).path.split(".")[0]
        if name not in typed:
            continue
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(j).statistics
            if stats is None or not stats.has_null_count:
                if parquet.read(columns=[name]).column(0).null_count:
                    out.add(name)
                break
            if stats.null_count:
                out.add(name)
                break
    return out


def _alive(pid: int) -> bool:
    """Whether a process of this machine with that id still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def _check_name(*parts: str) -> None:
    for part in parts:
        check_name(part, "artifact path part")


class TableWriter:
    """A table artifact being written (from :meth:`ArtifactStore.open_table`): each ``write`` is a Parquet row
    group; ``close`` moves the file into place, records it and returns its reference.

    A batch is encoded and written on a thread of the writer's own while the caller makes the next one (Arrow's
    Parquet encoder and zstd release the GIL): a stage that reads, computes and writes batch by batch keeps both
    cores busy instead of one. At most one batch is in flight (``write`` first waits for the one before), so
    memory stays bounded by a batch; a failed write is raised by the next ``write`` or by ``close``."""

    def __init__(self, store: ArtifactStore, run_id: str, stage: str, name: str, rel: str):
        self.store, self.run_id, self.stage, self.name, self.rel = store, run_id, stage, name, rel
        self.tmp = store._tmp(rel)
        self.sink = store.fs.open_output_stream(store._abs(self.tmp))
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"write-{stage}-{name}")
        self._pending: Future | None = None

    def write(self, batch: pd.DataFrame | pa.Table) -> None:
        # a DataFrame becomes Arrow here, in the caller's thread: the caller may change it once write returns,
        # an Arrow table it cannot
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_pandas(batch)
        self._wait()
        self._pending = self._thread.submit(self._write, table)
        self.rows += table.num_rows

    def _write(self, table: pa.Table) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.sink, table.schema, **_parquet_options(table.schema))
        self.writer.write_table(table.cast(self.writer.schema) if table.schema != self.writer.schema else table)

    def _wait(self) -> None:
        """Wait for the batch in flight, raising its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> ArtifactRef:
        self._wait()
        self._thread.shutdown()
        if self.writer is None:
            raise ArtifactError(f"no batch to write for {self.rel}")
        self.writer.close()
        self.sink.close()
        store = self.store
        sha, size = store._hash_file(self.tmp)
        store.fs.move(store._abs(self.tmp), store._abs(self.rel))
        ref = ArtifactRef(run_id=self.run_id, stage=self.stage, name=self.name, kind="table", path=self.rel,
                          sha256=sha, rows=self.rows)
        store._record(ref, size)
        return ref

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.shutdown()  # waits for a batch still in flight before its file goes
        if not self.sink.closed:  # not closed: an exception, or nothing to publish
            if self.writer is not None and self.writer.is_open:  # else it closes when collected, on a closed sink
                with suppress(OSError, pa.ArrowException):  # its footer goes into a file about to be deleted
                    self.writer.close()
            self.sink.close()
            self.store.fs.delete_file(self.store._abs(self.tmp))
            self.store._prune(self.rel)


class DatasetWriter:
    """A partitioned table artifact being written (from :meth:`ArtifactStore.open_dataset`): its parts are
    Parquet files that any process reaching the store writes into ``folder`` (``ArtifactStore.write_part``,
    e.g. on Dask workers); ``close`` lists them in ``_parts.json`` and moves the folder into place (at once on a
    local disk; on an object store file by file, ``_parts.json``, which every reader starts from, last)."""

    def __init__(self, store: ArtifactStore, run_id: str, stage: str, name: str, rel: str):
        self.store, self.run_id, self.stage, self.name, self.rel = store, run_id, stage, name, rel
        self.folder = store._tmp(rel)
        store.fs.create_dir(store._abs(self.folder), recursive=True)
        self.closed = False

    def close(self, parts: list[dict]) -> ArtifactRef:
        """Publish the parts ``write_part`` reported, in their order (the table's row order)."""
        if not parts:
            raise ArtifactError(f"no part to write for {self.rel}")
        index = json.dumps({"parts": parts}, indent=1).encode()
        store = self.store
        with store.fs.open_output_stream(store._abs(f"{self.folder}/{PARTS_INDEX}")) as sink:
            sink.write(index)
        store._move_folder(self.folder, self.rel, last=PARTS_INDEX)
        self.closed = True
        ref = ArtifactRef(run_id=self.run_id, stage=self.stage, name=self.name, kind="dataset", path=self.rel,
                          sha256=hashlib.sha256(index).hexdigest(), rows=sum(p["rows"] for p in parts))
        store._record(ref, sum(p["bytes"] for p in parts) + len(index))
        return ref

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.closed:
            self.store.fs.delete_dir(self.store._abs(self.folder))
            self.store._prune(self.rel)


class ArtifactStore:
    """Reads and writes run artifacts under one root.

    Args:
        root: Local folder or filesystem URI; runs go under ``<root>/runs``.
    """

    def __init__(self, root: str | Path):
        root = str(root)
        if "://" in root:
            try:  # the secret, if the URI holds one, exists only here and in the filesystem object
                self.fs, base = pafs.FileSystem.from_uri(resolve(root))
            except (pa.ArrowException, ValueError, TrainflowError) as exc:
                raise ArtifactError(f"artifacts root {mask(root)}: {redact(str(exc), root)}") from None
        else:
            try:
                self.fs, base = pafs.LocalFileSystem(), str(Path(root).resolve())
            except (OSError, RuntimeError) as exc:  # a symbolic link loop
                raise ArtifactError(f"artifacts root {root} cannot be used: {exc}") from None
        self.root = root
        self.base = base.rstrip("/")
        self._lock = threading.Lock()

    def check_writable(self) -> None:
        """A local root that runs cannot be written under (``/proc``, a file, a read-only folder), found before
        any work: the folder is made if missing and a file is written and removed in it.

        Raises:
            ArtifactError: One line naming the root and the system's reason.
        """
        folder = self.local_folder()
        if folder is None:
            return
        try:
            runs = folder / "runs"
            runs.mkdir(parents=True, exist_ok=True)
            probe = runs / f".tmp-{os.getpid()}-writable"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ArtifactError(f"artifacts root {self.root} cannot be written: {exc.strerror or exc}"
                                f"{f' ({exc.filename})' if exc.filename else ''}") from None

    def __reduce__(self) -> tuple:
        return ArtifactStore, (self.root,)  # another process (a Dask worker) opens the same root

    # -- paths -----------------------------------------------------------------------------
    def local_folder(self, *parts: str) -> Path | None:
        """``<root>/<parts...>`` on the local disk, for files that need a real path (checkpoints, a SQLite
        database); None when the root is a remote filesystem."""
        return Path(self.base, *parts) if isinstance(self.fs, pafs.LocalFileSystem) else None

    def _abs(self, rel: str) -> str:
        if isinstance(self.fs, pafs.LocalFileSystem):
            inside(self.base, *rel.split("/"))  # a symbolic link under the root must not lead out of it
        return f"{self.base}/{rel}"

    def local_path(self, ref: ArtifactRef) -> Path:
        """The artifact's path on the local disk (local stores only)."""
        path = self.local_folder(ref.path)
        if path is None:
            raise ArtifactError(f"store {self.root} is not local")
        return path

    def path_uri(self, rel: str) -> str:
        """Where a path relative to the root lies (local path or URI)."""
        return self._uri(rel)

    def _uri(self, rel: str) -> str:
        if isinstance(self.fs, pafs.LocalFileSystem):
            return self._abs(rel)
        base, mark, options = self.root.partition("?")  # s3://bucket/root?endpoint_override=...: the path first
        return mask(f"{base.rstrip('/')}/{rel}{mark}{options}")

    def uri(self, ref: ArtifactRef) -> str:
        """Where an artifact lies, as a person would type it (local path or URI)."""
        return self._uri(ref.path)

    def run_uri(self, run_id: str) -> str:
        """Where a run's folder lies (local path or URI)."""
        return self._uri(self.run_dir(run_id))

    def manifest_uri(self, run_id: str) -> str:
        """Where a run's manifest lies (local path or URI)."""
        return self._uri(self._manifest(run_id))

    def _manifest(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/manifest.parquet"

    def run_dir(self, run_id: str) -> str:
        """Path of a run's folder, relative to the root."""
        _check_name(run_id)
        return f"runs/{run_id}"

    def _exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self._abs(rel)).type != pafs.FileType.NotFound

    def _claim(self, rel: str) -> None:
        if self._exists(rel):
            raise ArtifactError(f"artifact {rel} already exists; runs never overwrite artifacts")
        folder = rel.rsplit("/", 1)[0]
        self.fs.create_dir(self._abs(folder), recursive=True)
        self._sweep(folder)

    def _prune(self, rel: str) -> None:
        """Remove the folders above ``rel`` up to its run's that a write abandoned there left empty (a failed
        command left an empty run folder behind). Local only: ``rmdir`` refuses a folder another writer has
        just put a file in; an object store has no empty folders."""
        local = self.local_folder()
        parts = rel.split("/")
        if local is None or len(parts) < 3 or parts[0] != "runs":
            return
        for depth in range(len(parts) - 1, 1, -1):  # runs/<run>/<stage>/...: the stage folder up to the run's
            try:
                (local / "/".join(parts[:depth])).rmdir()
            except OSError:  # not empty, or gone
                return

    def _sweep(self, folder: str, recursive: bool = False) -> int:
        """Delete the ``.tmp-*`` leftovers of killed writes in ``folder`` (and below it if ``recursive``): on a
        local disk, those whose writing process is gone; elsewhere, those older than ``STALE_TMP_SECONDS``. A
        write still in progress is left alone. Returns how many were deleted."""
        now = dt.datetime.now(dt.UTC).timestamp()
        local = isinstance(self.fs, pafs.LocalFileSystem)
        selector = pafs.FileSelector(self._abs(folder), allow_not_found=True, recursive=recursive)
        swept: list[str] = []
        for info in self.fs.get_file_info(selector):
            if not info.base_name.startswith(".tmp-") or any(info.path.startswith(f"{s}/") for s in swept):
                continue
            pid = info.base_name.split("-")[1]
            if local and pid.isdigit():
                stale = not _alive(int(pid))
            else:
                stale = info.mtime is not None and now - info.mtime.timestamp() > STALE_TMP_SECONDS
            if stale:
                (self.fs.delete_dir if info.type == pafs.FileType.Directory else self.fs.delete_file)(info.path)
                swept.append(info.path)
        return len(swept)

    def _move_folder(self, src: str, dest: str, last: str | None = None) -> None:
        """Move a folder of files into place: one rename on a local disk; elsewhere file by file, ``last`` after
        the others (an object store has no folders to rename: Arrow's S3FileSystem refuses to move one), and
        what this call put under ``dest`` is removed again if a move fails."""
        if isinstance(self.fs, pafs.LocalFileSystem):
            self.fs.move(self._abs(src), self._abs(dest))
            return
        names = [i.base_name for i in self.fs.get_file_info(pafs.FileSelector(self._abs(src)))]
        existed = self._exists(dest)  # a content-addressed folder another writer stored first: never removed
        self.fs.create_dir(self._abs(dest), recursive=True)
        try:
            for name in sorted(names, key=lambda n: n == last):
                self.fs.move(self._abs(f"{src}/{name}"), self._abs(f"{dest}/{name}"))
        except BaseException:
            if not existed:
                self.fs.delete_dir(self._abs(dest))
            raise
        self.fs.delete_dir(self._abs(src))

    def _tmp(self, rel: str) -> str:
        head, tail = rel.rsplit("/", 1)
        with _WROTE_IN_LOCK:
            _WROTE_IN.setdefault((self.fs.type_name, self._abs(head)), self.fs)
        return f"{head}/.tmp-{os.getpid()}-{secrets.token_hex(4)}-{tail}"  # the writer's pid: see _sweep

    def _hash_file(self, rel: str) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        with self.fs.open_input_stream(self._abs(rel)) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    # -- writing ---------------------------------------------------------------------------
    def write_table(self, run_id: str, stage: str, name: str, df: pd.DataFrame | pa.Table) -> ArtifactRef:
        """Write a table as Parquet, atomically, and record it in the run's manifest.

        Args:
            run_id: The run writing it.
            stage: Stage folder.
            name: Artifact name (without ``.parquet``).
            df: A DataFrame (its index is kept when it is not a plain range) or an Arrow table.

        Returns:
            The artifact's reference.

        Raises:
            ArtifactError: The artifact already exists.
        """
        return self.write_table_batches(run_id, stage, name, [df])

    def write_table_batches(self, run_id: str, stage: str, name: str,
                            batches: Iterable[pd.DataFrame | pa.Table]) -> ArtifactRef:
        """Write a table from batches, one Parquet row group each, holding one batch in memory at a time.

        The file appears under its name only once every batch is written (a failure leaves nothing);
        every batch must have the first one's columns and types.
        """
        with self.open_table(run_id, stage, name) as writer:
            for batch in batches:
                writer.write(batch)
            return writer.close()

    def open_table(self, run_id: str, stage: str, name: str) -> TableWriter:
        """A table artifact to write batch by batch (several can be open at once: one pass over an input can
        write many outputs). Use it as a context manager: leaving the block without ``close`` (or by an
        exception) removes what was written."""
        _check_name(stage, name)
        rel = f"{self.run_dir(run_id)}/{stage}/{name}.parquet"
        with self._lock:
            self._claim(rel)
        return TableWriter(self, run_id, stage, name, rel)

    def open_dataset(self, run_id: str, stage: str, name: str) -> DatasetWriter:
        """A table artifact written as parts, each by any process that reaches the store (a Dask worker writes
        the part it computed: nothing passes through this process). Use it as a context manager: leaving the
        block without ``close`` removes the parts written."""
        _check_name(stage, name)
        rel = f"{self.run_dir(run_id)}/{stage}/{name}"
        with self._lock:
            self._claim(rel)
        return DatasetWriter(self, run_id, stage, name, rel)

    def write_part(self, folder: str, number: int, table: pd.DataFrame | pa.Table) -> dict:
        """Write part ``number`` of a dataset being written into ``folder`` (``DatasetWriter.folder``); returns
        what ``DatasetWriter.close`` lists: file name, sha256, rows, bytes."""
        *parents, tmp = folder.split("/")
        _check_name(*parents, tmp.removeprefix(".tmp-"))
        if not tmp.startswith(".tmp-"):
            raise ArtifactError(f"{folder} is not a dataset being written")
        # a DataFrame's index labels are stored as a column: the parts' own ranges would clash
        table = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=True)
        fname = f"part-{number:05d}.parquet"
        with self.fs.open_output_stream(self._abs(f"{folder}/{fname}")) as sink:
            pq.write_table(table, sink, **_parquet_options(table.schema))
        sha, size = self._hash_file(f"{folder}/{fname}")
        return {"file": fname, "sha256": sha, "rows": table.num_rows, "bytes": size}

    def write_file(self, run_id: str, stage: str, name: str, data: bytes) -> ArtifactRef:
        """Write one file (``name`` includes its extension), atomically."""
        _check_name(stage, name)
        rel = f"{self.run_dir(run_id)}/{stage}/{name}"
        with self._lock:
            self._claim(rel)
        tmp = self._tmp(rel)
        with self.fs.open_output_stream(self._abs(tmp)) as sink:
            sink.write(data)
        self.fs.move(self._abs(tmp), self._abs(rel))
        ref = ArtifactRef(run_id=run_id, stage=stage, name=name, kind="file", path=rel,
                          sha256=hashlib.sha256(data).hexdigest())
        self._record(ref, len(data))
        return ref

    def put_folder(self, rel: str, files: dict[str, bytes], exist_ok: bool = False) -> str:
        """Write a folder of files at ``rel`` that appears all at once or not at all (on an object store, whose
        folders cannot be renamed, file by file, what was moved removed again if a move fails).

        Args:
            rel: Folder path relative to the root.
            files: File name to content.
            exist_ok: Leave an existing folder as it is (for content-addressed folders) instead of raising.

        Returns:
            The sha256 of the folder: of its files' names and hashes, in name order.
        """
        _check_name(*files)
        sha = folder_digest(files)
        with self._lock:
            if exist_ok and self._exists(rel):
                return sha
            self._claim(rel)
        tmp = self._tmp(rel)
        self.fs.create_dir(self._abs(tmp), recursive=True)
        for fname, data in files.items():
            with self.fs.open_output_stream(self._abs(f"{tmp}/{fname}")) as sink:
                sink.write(data)
        try:
            self._move_folder(tmp, rel)
        except OSError:
            if not (exist_ok and self._exists(rel)):  # another writer stored the same content first
                raise
            self.fs.delete_dir(self._abs(tmp))
        return sha

    def write_bundle(self, run_id: str, stage: str, name: str, files: dict[str, bytes]) -> ArtifactRef:
        """Write a folder of files (a model and its metadata) that appears all at once or not at all."""
        _check_name(stage, name)
        rel = f"{self.run_dir(run_id)}/{stage}/{name}"
        sha = self.put_folder(rel, files)
        ref = ArtifactRef(run_id=run_id, stage=stage, name=name, kind="bundle", path=rel, sha256=sha)
        self._record(ref, sum(len(b) for b in files.values()))
        return ref

    def _record(self, ref: ArtifactRef, size: int, source_run: str | None = None, run_id: str | None = None) -> None:
        row = {"stage": ref.stage, "name": ref.name, "kind": ref.kind, "path": ref.path, "rows": ref.rows,
               "bytes": size, "sha256": ref.sha256, "created": dt.datetime.now(dt.UTC),
               "source_run": source_run or ref.run_id}
        run = run_id or ref.run_id
        rel = self._manifest(run)
        with self._lock:
            old = self.manifest(run)
            new = pd.concat([old, pd.DataFrame([row])], ignore_index=True) if len(old) else pd.DataFrame([row])
            new["rows"] = new["rows"].astype("Int64")
            self.fs.create_dir(self._abs(self.run_dir(run)), recursive=True)
            self._sweep(self.run_dir(run))
            tmp = self._tmp(rel)
            with self.fs.open_output_stream(self._abs(tmp)) as sink:
                pq.write_table(pa.Table.from_pandas(new[MANIFEST_COLUMNS], preserve_index=False), sink)
            self.fs.move(self._abs(tmp), self._abs(rel))

    def add_reference(self, run_id: str, ref: ArtifactRef) -> None:
        """Record in ``run_id``'s manifest an artifact it reused from another run (a cache hit)."""
        if ref.run_id == run_id:
            return
        info = self.fs.get_file_info(self._abs(ref.path))
        self._record(ref, info.size or 0, source_run=ref.run_id, run_id=run_id)

    def is_intact(self, ref: ArtifactRef) -> bool:
        """True when the artifact still exists and its content matches its recorded sha256."""
        try:
            if ref.kind == "bundle":
                self.read_bundle(ref)
            elif ref.kind == "dataset":
                return all(self._hash_file(p["file"])[0] == p["sha256"] for p in self.parts(ref))
            else:
                digest, _ = self._hash_file(ref.path) if self._exists(ref.path) else ("", 0)
                return digest == ref.sha256
        except (ArtifactError, OSError):
            return False
        return True

    # -- reading ---------------------------------------------------------------------------
    def _verified_bytes(self, ref: ArtifactRef, rel: str | None = None, sha256: str | None = None) -> bytes:
        rel, sha256 = rel or ref.path, sha256 or ref.sha256
        if not self._exists(rel):
            raise ArtifactError(f"artifact {rel} of run {ref.run_id} does not exist")
        with self.fs.open_input_stream(self._abs(rel)) as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ArtifactError(f"artifact {rel} does not match its recorded sha256; it was changed after writing")
        return data

    def parts(self, ref: ArtifactRef) -> list[dict]:
        """A table artifact's parts (file, sha256, rows, bytes; paths relative to the root), its list checked
        against the recorded hash: one for a table, the dataset's parts in row order for a dataset."""
        if ref.kind != "dataset":
            return [{"file": ref.path, "sha256": ref.sha256, "rows": ref.rows}]
        index = json.loads(self._verified_bytes(ref, f"{ref.path}/{PARTS_INDEX}"))
        return [{**part, "file": f"{ref.path}/{part['file']}"} for part in index["parts"]]

    def shares(self, ref: ArtifactRef) -> list[tuple[int, dict, int]]:
        """Each part of :meth:`parts` as ``(number, part, offset)``: what one worker needs to read its share of
        the table (``offset``: the part's first row in the table, for the rows' index labels)."""
        out, offset = [], 0
        for number, part in enumerate(self.parts(ref)):
            out.append((number, part, offset))
            offset += part["rows"]
        return out

    def read_part(self, ref: ArtifactRef, part: dict, dictionary: list[str] | None = None) -> pq.ParquetFile:
        """One part of :meth:`parts` (its hash checked); its text columns named in ``dictionary`` are read as
        Arrow dictionaries (pandas Categoricals): the Parquet file's own dictionary pages, no string per row."""
        data = pa.BufferReader(self._verified_bytes(ref, part["file"], part["sha256"]))
        parquet = pq.ParquetFile(data)
        wanted = [c for c in dictionary or [] if c in parquet.schema_arrow.names]  # pyarrow skips non-text ones
        return pq.ParquetFile(data, read_dictionary=wanted) if wanted else parquet

    def _parquet_files(self, ref: ArtifactRef, parts: list[dict] | None = None,
                       dictionary: list[str] | None = None) -> Iterator[pq.ParquetFile]:
        for part in self.parts(ref) if parts is None else parts:
            yield self.read_part(ref, part, dictionary)

    def read_table(self, ref: ArtifactRef, columns: list[str] | None = None,
                   dictionary: list[str] | None = None) -> pd.DataFrame:
        """Read a table artifact after checking its hash (``dictionary``: text columns read as Categoricals)."""
        return self.read_arrow(ref, columns, dictionary=dictionary).to_pandas()

    def read_arrow(self, ref: ArtifactRef, columns: list[str] | None = None,
                   parts: list[dict] | None = None, dictionary: list[str] | None = None) -> pa.Table:
        """Read a table artifact as an Arrow table after checking its hash (a DataFrame's index, when it was
        kept, is a column: see :func:`row_index`); a dataset's parts in order (``parts``: only these of
        :meth:`parts`), as one table; text columns named in ``dictionary`` as Arrow dictionaries."""
        tables = [parquet.read(columns=columns) for parquet in self._parquet_files(ref, parts, dictionary)]
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")

    def read_arrow_batches(self, ref: ArtifactRef, batch_rows: int, parts: list[dict] | None = None,
                           dictionary: list[str] | None = None) -> Iterator[pa.Table]:
        """A table artifact (its hash checked first) as Arrow tables of at most ``batch_rows`` rows, in order
        (a dataset part by part; ``parts``: only these of :meth:`parts`; ``dictionary``: as in ``read_arrow``)."""
        for parquet in self._parquet_files(ref, parts, dictionary):
            yield from _batches(parquet, batch_rows)

    def pandas_types(self, ref: ArtifactRef) -> dict[str, Any]:
        """The dtype ``read_table`` gives each integer or boolean column holding a missing value anywhere in the
        table (float64, object), from the parts' footers: what a batch or part read alone must be given to have
        the whole table's dtypes."""
        types: dict[str, pa.DataType] = {}
        for part in self.parts(ref):
            with self.fs.open_input_file(self._abs(part["file"])) as f:  # the footer alone: types, statistics
                parquet = pq.ParquetFile(f)
                types.update({name: parquet.schema_arrow.field(name).type for name in _with_nulls(parquet)})
        return {name: "float64" if pa.types.is_integer(t) else object for name, t in types.items()}

    def read_table_batches(self, ref: ArtifactRef, batch_rows: int, parts: list[dict] | None = None, offset: int = 0,
                           types: dict[str, Any] | None = None,
                           dictionary: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """:meth:`read_arrow_batches` as DataFrames, each row with its index label and each column in the dtype
        ``read_table`` gives the whole table (an integer or boolean column with a missing value anywhere is
        float64 or object in every batch, as pandas converts the whole column).

        A worker reading its share of a dataset passes ``parts`` (the first at row ``offset`` of the table) and
        the ``types`` of :meth:`pandas_types`. Text columns named in ``dictionary`` come as Categoricals.
        """
        widened = self.pandas_types(ref) if types is None else types
        for batch in self.read_arrow_batches(ref, batch_rows, parts, dictionary):
            rows, index = row_index(batch, offset)
            df = rows.to_pandas()
            df.index = pd.Index(index.to_numpy())
            todo = {c: t for c, t in widened.items() if c in df.columns and df[c].dtype != t}
            offset += len(batch)
            yield df.astype(todo) if todo else df

    def read_share(self, ref: ArtifactRef, share: tuple[int, dict, int], types: dict[str, Any],
                   dictionary: list[str] | None = None) -> pd.DataFrame:
        """One share of :meth:`shares` as a DataFrame with the whole table's index labels and dtypes (``types``:
        :meth:`pandas_types`; ``dictionary``: text columns as Categoricals): what a worker reads."""
        _, part, offset = share
        frames = list(self.read_table_batches(ref, max(part["rows"], 1), [part], offset, types, dictionary))
        return frames[0] if len(frames) == 1 else pd.concat(frames)

    def read_file(self, ref: ArtifactRef) -> bytes:
        """Read a file artifact's bytes (for a table: its Parquet bytes) after checking its hash."""
        if ref.kind == "dataset":
            raise ArtifactError(f"artifact {ref.path} is a dataset of parts, not one file")
        return self._verified_bytes(ref)

    def read_bundle(self, ref: ArtifactRef) -> dict[str, bytes]:
        """Read every file of a bundle after checking the bundle's hash."""
        selector = pafs.FileSelector(self._abs(ref.path))
        files: dict[str, bytes] = {}
        for info in self.fs.get_file_info(selector):
            with self.fs.open_input_stream(info.path) as f:
                files[info.base_name] = f.read()
        if folder_digest(files) != ref.sha256:
            raise ArtifactError(f"bundle {ref.path} does not match its recorded sha256")
        return files

    def manifest(self, run_id: str) -> pd.DataFrame:
        """A run's manifest (empty if the run wrote nothing yet)."""
        rel = self._manifest(run_id)
        if not self._exists(rel):
            return pd.DataFrame(columns=MANIFEST_COLUMNS)
        try:
            with self.fs.open_input_stream(self._abs(rel)) as f:
                table = pq.read_table(pa.BufferReader(f.read())).to_pandas()
        except (pa.ArrowInvalid, OSError) as exc:
            raise ArtifactError(f"the manifest of run {run_id} is not readable ({clipped(str(exc), 120)}); "
                                "that run's artifacts cannot be looked up") from None
        if not set(MANIFEST_COLUMNS) <= set(table.columns):
            raise ArtifactError(f"the manifest of run {run_id} lacks columns "
                                f"{sorted(set(MANIFEST_COLUMNS) - set(table.columns))}")
        return table

    def find(self, run_id: str, stage: str, name: str) -> ArtifactRef:
        """Look up an earlier run's artifact by stage and name (for running one stage alone).

        Raises:
            ArtifactError: The run or the artifact is not in the catalog.
        """
        m = self.manifest(run_id)
        hit = m[(m["stage"] == stage) & (m["name"] == name)]
        if hit.empty:
            known = ", ".join(f"{s}/{n}" for s, n in zip(m["stage"], m["name"])) or "nothing"
            raise ArtifactError(f"run {run_id} has no artifact {stage}/{name} (it has: {known})")
        row = hit.iloc[-1]
        rows = row["rows"]
        return ArtifactRef(run_id=row["source_run"], stage=stage, name=name, kind=row["kind"], path=row["path"],
                           sha256=row["sha256"], rows=None if pd.isna(rows) else int(rows))

    def runs(self) -> list[str]:
        """Run ids in the store, oldest first."""
        info = self.fs.get_file_info(pafs.FileSelector(self._abs("runs"), allow_not_found=True))
        return sorted(i.base_name for i in info if i.type == pafs.FileType.Directory)

    def collect_garbage(self, keep: int) -> tuple[list[str], int]:
        """Delete every run folder but the ``keep`` newest, and in those kept the ``.tmp-*`` leftovers of killed
        writes (a killed run's folder is never written again, so no later write sweeps them); returns the
        deleted run ids and how many leftovers went.

        Registered models keep their own copies (``data/registry/models``), and a later run whose cached
        stages pointed into a deleted run finds them missing and recomputes them (``trainflow.cache``).
        """
        if keep < 0:
            raise ArtifactError(f"keep must be 0 or more, not {keep}")
        runs = self.runs()
        old = runs[:-keep] if keep else runs
        for run_id in old:
            self.fs.delete_dir(self._abs(self.run_dir(run_id)))
        leftovers = sum(self._sweep(self.run_dir(run_id), recursive=True) for run_id in runs[len(old):])
        return old, leftovers

    def write_png(self, run_id: str, stage: str, name: str, fig) -> ArtifactRef:  # noqa: ANN001 (matplotlib Figure)
        """Save a matplotlib figure as a PNG file artifact and close it."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        return self.write_file(run_id, stage, f"{name}.png", buf.getvalue())
