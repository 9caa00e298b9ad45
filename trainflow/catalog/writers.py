"""Artifacts written in pieces: a table batch by batch (encoded on a thread of its own) and a dataset part by part
(by any process that reaches the store); each appears under its name only when closed."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trainflow.catalog.parquet import PARTS_INDEX, parquet_options
from trainflow.catalog.refs import ArtifactRef
from trainflow.errors import ArtifactError

if TYPE_CHECKING:
    from trainflow.catalog.store import ArtifactStore


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
            self.writer = pq.ParquetWriter(self.sink, table.schema, **parquet_options(table.schema))
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
