"""The commands that are not flows: ``schema infer``, ``registry list|promote|rollback|upgrade``, ``runs
list|gc``, ``ui``, ``serve``, ``deployments``, ``simulate`` and ``screenshot``, each a pydantic-settings model whose ``cli_cmd`` calls the library. A user's error raises
``TrainflowError`` (``cli.main`` prints it as one line, exit 2)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import CliApp, CliPositionalArg, CliSubCommand

from trainflow import PROJECT_ROOT
from trainflow.errors import RegistryError, TrainflowError


class SchemaInfer(BaseModel):
    """Infer a starter schema and Great Expectations suite from a sample of the data."""

    name: str = Field(description="dataset name (the schema's file name)")
    source: str = Field(description="CSV/Parquet file or folder, sklearn:NAME, or a SQLAlchemy URL")
    query: str | None = Field(None, description="SQL query when --source is a database URL")
    label: str | None = Field(None, description="label column (default: the last column)")
    missing_marker: list[str] = Field([], description="a string meaning missing, e.g. '?' (repeat the flag)")
    sensitive: list[str] = Field([], description="a sensitive attribute column (repeat the flag)")
    sample_rows: int = Field(100_000, ge=1, description="rows to read for inference")
    schemas_dir: str | None = Field(None, description="where to write the schema; empty: the project's schemas/")
    force: bool = Field(False, description="overwrite an existing schema")

    def cli_cmd(self) -> None:
        from trainflow.names import check_name, inside
        from trainflow.schema import DEFAULT_SCHEMAS_DIR, infer_schema, save_schema
        from trainflow.sources import normalise, read_source

        folder = self.schemas_dir or str(DEFAULT_SCHEMAS_DIR)
        out = inside(folder, f"{check_name(self.name, 'dataset name')}.json")
        if out.exists() and not self.force:
            raise TrainflowError(f"{out} exists; pass --force to overwrite it")
        df = normalise(read_source(self.source, self.name, query=self.query).head(self.sample_rows),
                       self.missing_marker)
        schema = infer_schema(df, self.name, self.label, self.source, self.missing_marker, self.sensitive)
        path = save_schema(schema, folder)
        print(f"wrote {path}: task {schema.task}, label '{schema.label}', {len(schema.features)} features, "
              f"{len(schema.expectations)} expectations; review it before training")
        if schema.task == "binary":
            print(f"  positive class: {schema.positive_class!r} (the rarer label; F1, precision and recall are "
                  f"about it: set positive_class in the schema to change it)")
        if schema.datetime_features:
            print(f"  dates (calendar features): {', '.join(schema.datetime_features)}")
        if ignored := [c.name for c in schema.columns if c.role == "ignore"]:
            print(f"  ignored (free text, a value per row): {', '.join(ignored)}")


class Schema(BaseModel):
    """Dataset schemas: ``schema infer`` writes a starter one."""

    infer: CliSubCommand[SchemaInfer] = Field(description="write a starter schema and GX suite for a new dataset")

    def cli_cmd(self) -> None:
        CliApp.run_subcommand(self)


class RegistryList(BaseModel):
    """Versions of a model with their aliases and test metrics."""

    model: CliPositionalArg[str]


class RegistryPromote(BaseModel):
    """Point production at a version by hand."""

    model: CliPositionalArg[str]
    version: CliPositionalArg[int]


class RegistryRollback(BaseModel):
    """Point production back at the previous (or a given) version."""

    model: CliPositionalArg[str]
    to: int | None = Field(None, description="version to restore (default: the one before the current)")


class RegistryUpgrade(BaseModel):
    """Bring the registry's schema to this version of trainflow (opening a registry does it too)."""


class RegistryCommand(BaseModel):
    """Look at a model's versions and move its production alias."""

    registry_url: str | None = Field(None, description="SQLAlchemy URL (default: the SQLite file under data/registry)")
    files_root: str | None = Field(None, description="a server registry's model files: a folder or filesystem URI "
                                                     "every opener reads from the database once the registry is "
                                                     "created with it (a SQLite registry keeps them beside its file)")
    list: CliSubCommand[RegistryList] = Field(description="versions of a model with their aliases and test metrics")
    promote: CliSubCommand[RegistryPromote] = Field(description="point production at a version by hand")
    rollback: CliSubCommand[RegistryRollback] = Field(description="point production back at the previous version")
    upgrade: CliSubCommand[RegistryUpgrade] = Field(description="migrate the registry's schema to this version")

    def cli_cmd(self) -> None:
        from trainflow.registry import Registry, listed_metrics

        registry = Registry(self.registry_url, root=self.files_root, must_exist=True)  # never makes a SQLite one
        try:
            if self.files_root is not None and registry.is_sqlite:
                raise RegistryError(f"registry {registry.display_url}: --files-root is for a server registry; a "
                                    "SQLite registry keeps its model files beside its database file")
            if self.files_root is not None and registry.root != self.files_root:
                raise RegistryError(f"registry {registry.display_url} keeps its model files under {registry.root}, "
                                    f"recorded when it was created; --files-root {self.files_root} does not move them")
            if self.upgrade is not None:
                before, after = registry.revision_before, registry.revision
                print(f"registry {registry.display_url}: schema revision {after}, "
                      + ("up to date" if before == after else f"upgraded from {before}")
                      + f"; model files under {registry.root}")
            elif self.list is not None:
                name = self.list.model
                versions = registry.tables()["model_versions"]
                versions = versions[versions["model_name"] == name]
                if versions.empty:
                    raise RegistryError(f"model '{name}' has no versions")
                for v in versions.to_dict("records"):
                    info = registry.version_info(name, int(v["version"]))
                    metrics = ", ".join(f"{k} {val:.4f}" for k, val in listed_metrics(info).items())
                    print(f"v{info['version']:<4} {info['family']:<14} {','.join(info['aliases']):<22} {metrics}  "
                          f"run {info['run_id']}")
            elif self.rollback is not None:
                version = registry.rollback(self.rollback.model, self.rollback.to,
                                            reason="rollback from the command line")
                print(f"{self.rollback.model}: production -> v{version}")
            else:
                registry.set_alias(self.promote.model, "production", self.promote.version,
                                   reason="promoted from the command line")
                print(f"{self.promote.model}: production -> v{self.promote.version}")
        finally:
            registry.close()


class RunsList(BaseModel):
    """Run ids, oldest first."""


class RunsGc(BaseModel):
    """Delete every run folder but the newest ``--keep``."""

    keep: int = Field(ge=0, description="how many of the newest runs to keep")


class Runs(BaseModel):
    """The run folders of an artifacts root, and deleting all but the newest."""

    artifacts_root: str | None = Field(None, description="folder or URI of the runs; empty: the project's data/")
    list: CliSubCommand[RunsList] = Field(description="run ids, oldest first")
    gc: CliSubCommand[RunsGc] = Field(description="delete every run folder but the newest --keep")

    def cli_cmd(self) -> None:
        from trainflow.catalog import ArtifactStore

        store = ArtifactStore(self.artifacts_root or str(PROJECT_ROOT / "data"))
        if self.list is not None:
            print("\n".join(store.runs()))
            return
        deleted, leftovers = store.collect_garbage(self.gc.keep)
        print(f"deleted {len(deleted)} run folder(s); kept {len(store.runs())}, with {leftovers} leftover(s) "
              "of killed writes removed from them")


class Ui(BaseModel):
    """Start the Prefect server and UI on 127.0.0.1 and serve every deployment."""

    port: int = Field(4200, ge=1, le=65535, description="the server's port on 127.0.0.1")

    def cli_cmd(self) -> None:
        from deployments.ui import run_ui

        run_ui(self.port)


class Serve(BaseModel):
    """Score rows over HTTP with a registered model's serving variant (POST /predict, GET /health, GET /model)."""

    model: CliPositionalArg[str] = Field(description="MODEL (its production version, followed through promotions), "
                                                     "MODEL@ALIAS, or MODEL:VERSION (pinned)")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=1, le=65535, description="port to listen on")
    registry_url: str | None = Field(None, description="SQLAlchemy URL of the registry; empty: data/registry")
    refresh_seconds: float = Field(10.0, gt=0, description="how often a followed alias is looked up")

    def cli_cmd(self) -> None:
        from deployments.scoring import serve

        serve(self.model, self.host, self.port, self.registry_url, self.refresh_seconds)


class Deployments(BaseModel):
    """Serve every deployment of a prefect.yaml from this process, for a Prefect server that is running
    (PREFECT_API_URL; `trainflow ui` starts both)."""

    file: Path | None = Field(None, description="a prefect.yaml of deployments; empty: deployments/prefect.yaml")

    def cli_cmd(self) -> None:
        from deployments.serve import DEPLOYMENTS_FILE, serve_file

        serve_file(self.file or DEPLOYMENTS_FILE)


class Simulate(BaseModel):
    """Write a week of daily Adult batches that drift (ages and hours creep up, a new workclass, flipped labels),
    for the nightly retraining to read."""

    out: Path | None = Field(None, description="folder for the batch files; empty: data/batches")
    days: int = Field(7, ge=1, description="daily batches to write")
    rows: int = Field(2000, ge=1, description="rows per day")
    seed: int = Field(0, description="random seed")

    def cli_cmd(self) -> None:
        from deployments.simulate import simulate

        for path in simulate(self.out or PROJECT_ROOT / "data" / "batches", self.days, self.rows, self.seed):
            print(path)


class Screenshot(BaseModel):
    """Take the documentation's screenshots of the Prefect UI (headless Chromium, Debian's chromium package)."""

    out: Path | None = Field(None, description="folder for the PNG files; empty: docs/")

    def cli_cmd(self) -> None:
        from deployments.screenshot import take_screenshots

        take_screenshots(self.out or PROJECT_ROOT / "docs")
