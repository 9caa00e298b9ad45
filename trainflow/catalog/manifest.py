"""Each run's manifest (``runs/<run-id>/manifest.parquet``): what the run wrote or reused, looked up by stage and
name; the runs in a store, and their garbage collection."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainflow.catalog.files import FileStore
from trainflow.catalog.refs import ArtifactRef
from trainflow.errors import ArtifactError, clipped

MANIFEST_COLUMNS = ["stage", "name", "kind", "path", "rows", "bytes", "sha256", "created", "source_run"]


class ManifestStore(FileStore):
    """The files under one root and the manifests of its runs."""

    def manifest_uri(self, run_id: str) -> str:
        """Where a run's manifest lies (local path or URI)."""
        return self._uri(self._manifest(run_id))

    def _manifest(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/manifest.parquet"

    def _record(self, ref: ArtifactRef, size: int, source_run: str | None = None, run_id: str | None = None) -> None:
        self._record_rows(run_id or ref.run_id, [self._row(ref, size, source_run)])

    @staticmethod
    def _row(ref: ArtifactRef, size: int, source_run: str | None = None) -> dict:
        return {"stage": ref.stage, "name": ref.name, "kind": ref.kind, "path": ref.path, "rows": ref.rows,
                "bytes": size, "sha256": ref.sha256, "created": dt.datetime.now(dt.UTC),
                "source_run": source_run or ref.run_id}

    def _record_rows(self, run: str, rows: list[dict]) -> None:
        rel = self._manifest(run)
        with self._lock:
            old = self.manifest(run)
            new = pd.concat([old, pd.DataFrame(rows)], ignore_index=True) if len(old) else pd.DataFrame(rows)
            new["rows"] = new["rows"].astype("Int64")
            self.fs.create_dir(self._abs(self.run_dir(run)), recursive=True)
            self._sweep(self.run_dir(run))
            tmp = self._tmp(rel)
            with self.fs.open_output_stream(self._abs(tmp)) as sink:
                pq.write_table(pa.Table.from_pandas(new[MANIFEST_COLUMNS], preserve_index=False), sink)
            self.fs.move(self._abs(tmp), self._abs(rel))

    def add_references(self, run_id: str, refs: list[ArtifactRef]) -> None:
        """Record in ``run_id``'s manifest the artifacts it reused from other runs (cache hits), in one rewrite of
        the manifest; references to its own artifacts are already there."""
        reused = [r for r in refs if r.run_id != run_id]
        if reused:
            infos = self.fs.get_file_info([self._abs(r.path) for r in reused])
            self._record_rows(run_id, [self._row(r, i.size or 0, r.run_id) for r, i in zip(reused, infos)])

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
