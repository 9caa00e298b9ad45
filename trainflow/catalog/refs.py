"""What travels between Prefect tasks instead of data: a reference to one stored artifact; and the run ids and
folder digests that name artifacts."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from pydantic import BaseModel, ConfigDict

from trainflow.names import check_name


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


def check_parts(*parts: str) -> None:
    """Every part of an artifact's path (run id, stage, name, file of a bundle) is a safe name
    (``trainflow.names``)."""
    for part in parts:
        check_name(part, "artifact path part")
