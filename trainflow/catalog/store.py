"""The catalog's store: every artifact of every run written and read by stage and name (the layout and guarantees
are in :mod:`trainflow.catalog`)."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainflow.catalog.artifacts import Artifact
from trainflow.catalog.manifest import ManifestStore
from trainflow.catalog.parquet import PARTS_INDEX, batches, parquet_options, row_index, with_nulls
from trainflow.catalog.refs import ArtifactRef, check_parts, folder_digest
from trainflow.catalog.writers import DatasetWriter, TableWriter
from trainflow.errors import ArtifactError


class ArtifactStore(ManifestStore):
    """Reads and writes run artifacts under one root: tables, datasets of parts, files and bundles, each checked
    against its hash when read.

    Args:
        root: Local folder or filesystem URI; runs go under ``<root>/runs``.
    """

    def __reduce__(self) -> tuple:
        return ArtifactStore, (self.root,)  # another process (a Dask worker) opens the same root

    # -- writing --
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
        check_parts(stage, name)
        rel = f"{self.run_dir(run_id)}/{stage}/{name}.parquet"
        with self._lock:
            self._claim(rel)
        return TableWriter(self, run_id, stage, name, rel)

    def open_dataset(self, run_id: str, stage: str, name: str) -> DatasetWriter:
        """A table artifact written as parts, each by any process that reaches the store (a Dask worker writes
        the part it computed: nothing passes through this process). Use it as a context manager: leaving the
        block without ``close`` removes the parts written."""
        check_parts(stage, name)
        rel = f"{self.run_dir(run_id)}/{stage}/{name}"
        with self._lock:
            self._claim(rel)
        return DatasetWriter(self, run_id, stage, name, rel)

    def write_part(self, folder: str, number: int, table: pd.DataFrame | pa.Table) -> dict:
        """Write part ``number`` of a dataset being written into ``folder`` (``DatasetWriter.folder``); returns
        what ``DatasetWriter.close`` lists: file name, sha256, rows, bytes."""
        *parents, tmp = folder.split("/")
        check_parts(*parents, tmp.removeprefix(".tmp-"))
        if not tmp.startswith(".tmp-"):
            raise ArtifactError(f"{folder} is not a dataset being written")
        # a DataFrame's index labels are stored as a column: the parts' own ranges would clash
        table = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=True)
        fname = f"part-{number:05d}.parquet"
        with self.fs.open_output_stream(self._abs(f"{folder}/{fname}")) as sink:
            pq.write_table(table, sink, **parquet_options(table.schema))
        sha, size = self._hash_file(f"{folder}/{fname}")
        return {"file": fname, "sha256": sha, "rows": table.num_rows, "bytes": size}

    def write_file(self, run_id: str, stage: str, name: str, data: bytes) -> ArtifactRef:
        """Write one file (``name`` includes its extension), atomically."""
        check_parts(stage, name)
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

    def write_bundle(self, run_id: str, stage: str, name: str, files: dict[str, bytes]) -> ArtifactRef:
        """Write a folder of files (a model and its metadata) that appears all at once or not at all."""
        check_parts(stage, name)
        rel = f"{self.run_dir(run_id)}/{stage}/{name}"
        sha = self.put_folder(rel, files)
        ref = ArtifactRef(run_id=run_id, stage=stage, name=name, kind="bundle", path=rel, sha256=sha)
        self._record(ref, sum(len(b) for b in files.values()))
        return ref

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
            yield from batches(parquet, batch_rows)

    def pandas_types(self, ref: ArtifactRef) -> dict[str, Any]:
        """The dtype ``read_table`` gives each integer or boolean column holding a missing value anywhere in the
        table (float64, object), from the parts' footers: what a batch or part read alone must be given to have
        the whole table's dtypes."""
        types: dict[str, pa.DataType] = {}
        for part in self.parts(ref):
            with self.fs.open_input_file(self._abs(part["file"])) as f:  # the footer alone: types, statistics
                parquet = pq.ParquetFile(f)
                types.update({name: parquet.schema_arrow.field(name).type for name in with_nulls(parquet)})
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

    def write_png(self, run_id: str, stage: str, name: str, fig) -> ArtifactRef:  # noqa: ANN001 (matplotlib Figure)
        """Save a matplotlib figure as a PNG file artifact (``<name>.png``) and close it."""
        return self.write_file(run_id, stage, f"{name}.png", _png(fig))

    # -- by declared artifact (trainflow.catalog.artifacts) --
    def put(self, run_id: str, artifact: Artifact, value: Any) -> ArtifactRef:
        """Write a declared artifact: a table from a DataFrame or Arrow table (or an iterable of them, batch by
        batch), a file from bytes or a matplotlib figure (as PNG), a bundle from its files."""
        stage, name = artifact.stage, artifact.name
        if artifact.kind == "bundle":
            return self.write_bundle(run_id, stage, name, value)
        if artifact.kind == "file":
            return self.write_file(run_id, stage, name, _png(value) if hasattr(value, "savefig") else value)
        if isinstance(value, (pd.DataFrame, pa.Table)):
            return self.write_table(run_id, stage, name, value)
        return self.write_table_batches(run_id, stage, name, value)

    def open(self, run_id: str, artifact: Artifact, parts: bool = False) -> TableWriter | DatasetWriter:
        """A declared table artifact to write batch by batch (``open_table``), or part by part by any process
        (``parts``: ``open_dataset``)."""
        if artifact.kind != "table":
            raise ArtifactError(f"{artifact.stage}/{artifact.name} is a {artifact.kind}, not a table")
        opener = self.open_dataset if parts else self.open_table
        return opener(run_id, artifact.stage, artifact.name)

    def get(self, run_id: str, artifact: Artifact) -> ArtifactRef:
        """An earlier run's declared artifact (``find``)."""
        return self.find(run_id, artifact.stage, artifact.name)


def _png(fig) -> bytes:  # noqa: ANN001 (matplotlib Figure)
    """A matplotlib figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
