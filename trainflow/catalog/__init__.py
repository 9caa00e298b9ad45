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

The modules, by job: ``refs`` (references, run ids, folder digests), ``files`` (paths under the root, atomic moves,
sweeping killed writes), ``manifest`` (each run's list of artifacts, lookups, garbage collection), ``parquet`` (how
tables are stored), ``writers`` (tables and datasets written in pieces) and ``store`` (``ArtifactStore``: writing and
reading artifacts).
"""

from trainflow.catalog.files import remove_unfinished_writes
from trainflow.catalog.manifest import MANIFEST_COLUMNS
from trainflow.catalog.parquet import row_index, with_row_index
from trainflow.catalog.refs import ArtifactRef, folder_digest, new_run_id
from trainflow.catalog.store import ArtifactStore
from trainflow.catalog.writers import DatasetWriter, TableWriter

__all__ = ["MANIFEST_COLUMNS", "ArtifactRef", "ArtifactStore", "DatasetWriter", "TableWriter", "folder_digest",
           "new_run_id", "remove_unfinished_writes", "row_index", "with_row_index"]
