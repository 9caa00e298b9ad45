"""The model registry: model versions with lineage in a real database, and loading them back.

SQLAlchemy over SQLite by default (a file under ``data/``), any SQLAlchemy URL (PostgreSQL) for a
team; its schema is under Alembic (``trainflow/migrations``), upgraded when a registry is opened. Every
change is one transaction, and writers are serialised (SQLite: ``BEGIN IMMEDIATE``;
other databases: a row lock on the model), so a crash or two writers at once cannot leave the index
half-updated or give two versions the same number. Model files are copied into the registry's own
folder, addressed by content, before the row that points at them is committed.

Aliases: ``candidate`` is set on every new version; ``production`` is set on the first version of a
model that passes the gate (the register stage); after that only a promotion (the promote stage, or a
person with ``trainflow registry promote|rollback``) moves it, and every move is an event in the registry.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from trainflow.catalog import ArtifactRef, ArtifactStore, folder_digest
from trainflow.credentials import mask, redact, resolve
from trainflow.errors import RegistryError
from trainflow.names import check_name
from trainflow.schema import PROJECT_ROOT

DEFAULT_REGISTRY_URL = f"sqlite:///{PROJECT_ROOT / 'data' / 'registry' / 'registry.db'}"
PROFILE_FILE = "reference_profile.parquet"
MIGRATIONS = Path(__file__).with_name("migrations")  # the schema's Alembic migrations, shipped in the package
# what a registry made before its schema had migrations holds, newest first: the revision it is stamped with
PRE_MIGRATION_SCHEMAS = (("registry_properties", "0002"), ("model_versions", "0001"))
UPGRADE_LOCK = 7_404_251  # PostgreSQL advisory lock: one process upgrades a registry at a time
# A deployment that sets this key signs every version it registers and loads only versions signed with it: a
# file planted in the registry's folder with its sha256 planted in the database is refused, since its signature
# needs the key, which lives in the environment of the processes that register and load, never in the registry.
SIGNING_KEY_ENV = "TRAINFLOW_SIGNING_KEY"


def _signature(name: str, version: int, sha256: str) -> str | None:
    """The version's HMAC-SHA256 under the deployment's key; None when no key is set."""
    import hashlib
    import hmac
    import os

    key = os.environ.get(SIGNING_KEY_ENV)
    if not key:
        return None
    return hmac.new(key.encode(), f"{name}\0{version}\0{sha256}".encode(), hashlib.sha256).hexdigest()


class Base(DeclarativeBase):
    pass


class RegisteredModel(Base):
    __tablename__ = "registered_models"
    name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    created: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))
    latest_version: Mapped[int] = mapped_column(sa.Integer, default=0)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (sa.UniqueConstraint("model_name", "version"),)
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.ForeignKey("registered_models.name"))
    version: Mapped[int] = mapped_column(sa.Integer)
    run_id: Mapped[str] = mapped_column(sa.String(100))
    family: Mapped[str] = mapped_column(sa.String(50))
    task: Mapped[str] = mapped_column(sa.String(20))
    uri: Mapped[str] = mapped_column(sa.String(1000))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    metrics: Mapped[dict] = mapped_column(sa.JSON)
    lineage: Mapped[dict] = mapped_column(sa.JSON)
    created: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))
    # HMAC-SHA256 of name, version and sha256 under TRAINFLOW_SIGNING_KEY when it was registered (None: unsigned)
    signature: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)


class ServingVariant(Base):
    """The compressed variant a version is served with (the compress stage's pick); its files are stored in the
    version's folder under the prefix ``serving.``, and ``sha256`` is their own digest. A version without a row
    is served by its native model."""

    __tablename__ = "serving_variants"
    model_name: Mapped[str] = mapped_column(sa.ForeignKey("registered_models.name"), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    variant: Mapped[str] = mapped_column(sa.String(100))
    runtime: Mapped[str] = mapped_column(sa.String(20))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    gate: Mapped[dict] = mapped_column(sa.JSON)
    created: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))


SERVING_PREFIX = "serving."


class ModelAlias(Base):
    __tablename__ = "model_aliases"
    model_name: Mapped[str] = mapped_column(sa.ForeignKey("registered_models.name"), primary_key=True)
    alias: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer)
    updated: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))


class RegistryProperty(Base):
    """Facts about the registry itself, written when it is created: ``files_root``, the folder or filesystem URI
    of a server database's model files, so that every machine that opens a shared registry finds the same
    files."""

    __tablename__ = "registry_properties"
    name: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(2000))


class RegistryEvent(Base):
    __tablename__ = "registry_events"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(200))
    version: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    event: Mapped[str] = mapped_column(sa.String(50))
    detail: Mapped[dict] = mapped_column(sa.JSON)
    created: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, given as a path or as a ``file:`` URI (``sqlite:///file:/x/r.db?mode=ro&uri=true``);
    None for an in-memory database and any other driver."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database.removeprefix("file:").split("?", 1)[0])


def _alembic(connection: sa.Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest migration's revision (the schema this code reads and writes)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def upgrade_schema(engine: sa.Engine) -> tuple[str | None, str]:
    """Bring a registry's schema to the newest migration, in one transaction; a new database gets every table.
    A registry made before the schema had migrations (tables, no ``alembic_version``) is stamped with the
    revision its tables match first. Returns the revision before and after (equal: nothing to do)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # SQLite's writers already queue at BEGIN IMMEDIATE
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})")
        before = MigrationContext.configure(conn).get_current_revision()
        if before == head_revision():
            return before, before
        if before is None:
            tables = sa.inspect(conn)
            before = next((rev for table, rev in PRE_MIGRATION_SCHEMAS if tables.has_table(table)), None)
            if before is not None:
                command.stamp(_alembic(conn), before)
        command.upgrade(_alembic(conn), "head")
    return before, head_revision()


class Registry:
    """The model registry.

    Args:
        url: SQLAlchemy URL; the default is a SQLite file under ``data/registry``.
        root: Folder (or URI) for model files; default: beside a SQLite database. A server database (PostgreSQL)
            keeps the root it was created with (``registry_properties``; default ``data/registry``), so that every
            process and machine that opens it reads the same files.
        must_exist: A SQLite registry must already be there (reading one, or registering into the registry the
            run's settings check opened): a missing file is an error instead of a new, empty registry.
    """

    def __init__(self, url: str | None = None, root: str | None = None, must_exist: bool = False):
        self.url = url or DEFAULT_REGISTRY_URL  # as given: placeholders, never a resolved password
        self.display_url = mask(self.url)  # for messages, artifacts and the lineage
        resolved = resolve(self.url)
        try:
            db_path = _sqlite_path(resolved)
        except (sa.exc.ArgumentError, ValueError) as exc:
            raise RegistryError(f"registry {self.display_url} is not a database URL SQLAlchemy can use: "
                                f"{redact(str(exc).splitlines()[0][:200], self.url)}") from None
        if must_exist and db_path is not None and not db_path.is_file():
            # a registry that went missing (deleted during a run, a typo) must not become a new, empty one
            raise RegistryError(f"registry {self.display_url}: no database at {db_path}")
        if db_path is not None and self.url == DEFAULT_REGISTRY_URL:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        elif db_path is not None and not db_path.parent.is_dir():  # a typo must not start a new, empty registry
            raise RegistryError(f"registry {self.display_url}: the folder {db_path.parent} does not exist")
        chosen_root = root or str(db_path.parent if db_path else PROJECT_ROOT / "data" / "registry")
        try:
            self.engine = sa.create_engine(resolved, **({"connect_args": {"timeout": 60}} if db_path else {}))
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            missing = getattr(exc, "name", None) or str(exc).splitlines()[0]
            raise RegistryError(f"registry {self.display_url}: no database driver ({missing})") from None
        except sa.exc.ArgumentError as exc:
            raise RegistryError(f"registry {self.display_url} is not a database URL SQLAlchemy can use: "
                                f"{redact(str(exc).splitlines()[0][:200], self.url)}") from None
        self._sqlite = db_path is not None
        if self._sqlite:
            @sa.event.listens_for(self.engine, "connect")
            def _no_implicit_tx(dbapi_conn: Any, _: Any) -> None:
                dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below be the only transaction start

            @sa.event.listens_for(self.engine, "begin")
            def _immediate(conn: sa.Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: writers queue, never race
        try:  # connects: an unreachable or corrupt database is found here, before any training
            self.revision_before, self.revision = upgrade_schema(self.engine)  # before: None for a new database
            # a SQLite registry's files lie beside it wherever it is moved; a server's are where it says
            self.root = chosen_root if db_path is not None else self._files_root(chosen_root)
        except sa.exc.SQLAlchemyError as exc:
            self.engine.dispose()
            reason = redact(str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0][:300], self.url)
            raise RegistryError(f"registry {self.display_url} cannot be used: {type(exc).__name__}: {reason}") from None

    @property
    def is_sqlite(self) -> bool:
        """A SQLite file (its model files beside it), not a database server."""
        return self._sqlite

    def close(self) -> None:
        self.engine.dispose()

    def _files_root(self, chosen: str) -> str:
        """The files root the registry was created with; a registry without one (created before the table, or
        now) records ``chosen``, the first writer's choice winning a race."""
        with Session(self.engine) as session, session.begin():
            stored = session.get(RegistryProperty, "files_root")
            if stored is not None:
                return stored.value
        try:
            with Session(self.engine) as session, session.begin():
                session.add(RegistryProperty(name="files_root", value=chosen))
        except sa.exc.IntegrityError:  # another process recorded its root first: that one counts
            pass
        with Session(self.engine) as session:
            return session.get(RegistryProperty, "files_root").value

    def _lock_model(self, session: Session, name: str) -> RegisteredModel:
        query = sa.select(RegisteredModel).where(RegisteredModel.name == name).with_for_update()
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            # a model's first version: two writers may both find no row (a server database locks rows, not the
            # table); the second one's insert waits for the first's commit, fails on the name, and locks its row
            try:
                with session.begin_nested():
                    session.add(RegisteredModel(name=name, created=_now(), latest_version=0))
            except sa.exc.IntegrityError:
                pass
            row = session.execute(query).scalar_one()
        return row

    def _event(self, session: Session, name: str, version: int | None, event: str, **detail: Any) -> None:
        session.add(RegistryEvent(model_name=name, version=version, event=event,
                                  detail=json.loads(json.dumps(detail, default=str)), created=_now()))

    def register(self, name: str, files: dict[str, bytes], run_id: str, family: str, task_type: str,
                 metrics: dict[str, float], lineage: dict[str, Any],
                 serving: dict[str, bytes] | None = None) -> dict[str, Any]:
        """Add a model version; ``candidate`` points at it, and ``production`` too if the model has none.

        The files are stored under their own content hash, computed here, before the version row that
        points at them is committed. ``serving``: the files of the variant that serves the version
        (``trainflow.export.variant_files``), stored beside the native model and recorded with their hash.

        Returns:
            The new version's row as a dict.
        """
        check_name(name, "model name")
        serving_meta = None
        if serving:
            serving_meta = json.loads(serving["serving.json"])
            serving_meta["sha256"] = folder_digest(serving)
            files = {**files, **{SERVING_PREFIX + k: v for k, v in serving.items()}}
        sha256 = folder_digest(files)
        rel = f"models/{name}/{sha256}"
        ArtifactStore(self.root).put_folder(rel, files, exist_ok=True)  # content-addressed: stored once
        with Session(self.engine) as session, session.begin():
            model = self._lock_model(session, name)
            model.latest_version += 1
            version = model.latest_version
            session.add(ModelVersion(model_name=name, version=version, run_id=run_id, family=family, task=task_type,
                                     uri=rel, sha256=sha256, metrics=metrics,
                                     lineage=json.loads(json.dumps(lineage, default=str)), created=_now(),
                                     signature=_signature(name, version, sha256)))
            self._event(session, name, version, "registered", run_id=run_id, metrics=metrics)
            if serving_meta is not None:
                session.add(ServingVariant(model_name=name, version=version, variant=serving_meta["variant"],
                                           runtime=serving_meta["runtime"], sha256=serving_meta["sha256"],
                                           gate=json.loads(json.dumps(serving_meta.get("gate", {}), default=float)),
                                           created=_now()))
            self._set_alias(session, name, "candidate", version, reason="newly registered")
            if session.get(ModelAlias, (name, "production")) is None:
                self._set_alias(session, name, "production", version, reason="first version of this model")
        return self.version_info(name, version)

    def _set_alias(self, session: Session, name: str, alias: str, version: int, reason: str) -> None:
        row = session.get(ModelAlias, (name, alias))
        previous = row.version if row else None
        if row is None:
            session.add(ModelAlias(model_name=name, alias=alias, version=version, updated=_now()))
        else:
            row.version, row.updated = version, _now()
        self._event(session, name, version, "alias_set", alias=alias, previous=previous, reason=reason)

    def set_alias(self, name: str, alias: str, version: int, reason: str) -> None:
        """Point an alias at a version, in one transaction, recording why."""
        with Session(self.engine) as session, session.begin():
            self._lock_model(session, name)
            if session.execute(sa.select(ModelVersion).where(ModelVersion.model_name == name,
                                                             ModelVersion.version == version)).first() is None:
                raise RegistryError(f"model '{name}' has no version {version}")
            self._set_alias(session, name, alias, version, reason)

    def promote(self, name: str, version: int, expected_champion: int | None, reason: str) -> bool:
        """Point ``production`` at ``version`` if it still points at ``expected_champion`` (compare-and-set).

        In one serialised transaction, so of two promotions decided against the same champion only the
        first wins; the second finds production moved and changes nothing.

        Returns:
            True when production now points at ``version`` because of this call.
        """
        with Session(self.engine) as session, session.begin():
            self._lock_model(session, name)
            row = session.get(ModelAlias, (name, "production"))
            current = row.version if row else None
            if current != expected_champion:
                self._event(session, name, version, "promotion_lost", expected=expected_champion, found=current,
                            reason="production moved since the comparison")
                return False
            self._set_alias(session, name, "production", version, reason=reason)
            return True

    def rollback(self, name: str, to_version: int | None = None, reason: str = "rollback") -> int:
        """Point ``production`` back at ``to_version``, or at the version it pointed to before the current one.

        Returns:
            The version production now points to.

        Raises:
            RegistryError: No such version, or no earlier production version to return to.
        """
        with Session(self.engine) as session, session.begin():
            self._lock_model(session, name)
            current = session.get(ModelAlias, (name, "production"))
            if to_version is None:
                events = session.execute(sa.select(RegistryEvent).where(
                    RegistryEvent.model_name == name, RegistryEvent.event == "alias_set").order_by(
                    RegistryEvent.id.desc())).scalars().all()
                moves = [e for e in events if e.detail.get("alias") == "production"]
                if not moves or moves[0].detail.get("previous") is None:
                    raise RegistryError(f"model '{name}' has no earlier production version to roll back to")
                to_version = int(moves[0].detail["previous"])
            if session.execute(sa.select(ModelVersion).where(ModelVersion.model_name == name,
                                                             ModelVersion.version == to_version)).first() is None:
                raise RegistryError(f"model '{name}' has no version {to_version}")
            self._set_alias(session, name, "production", to_version,
                            reason=f"{reason} (from v{current.version if current else None})")
            return to_version

    def record(self, name: str, event: str, version: int | None = None, **detail: Any) -> None:
        """Record an event (a failed gate, say) without changing any version or alias."""
        with Session(self.engine) as session, session.begin():
            self._event(session, name, version, event, **detail)

    def resolve(self, name: str, version: int | None = None, alias: str | None = "production") -> int:
        """The version number meant by an explicit version or an alias."""
        if version is not None:
            return int(version)
        with Session(self.engine) as session:
            row = session.get(ModelAlias, (name, alias))
            if row is None:
                known = session.execute(sa.select(RegisteredModel.name)).scalars().all()
                raise RegistryError(f"model '{name}' has no alias '{alias}' (registered models: {known or 'none'})")
            return row.version

    def version_info(self, name: str, version: int) -> dict[str, Any]:
        """A version's row, with the aliases pointing at it."""
        with Session(self.engine) as session:
            row = session.execute(sa.select(ModelVersion).where(ModelVersion.model_name == name,
                                                                ModelVersion.version == version)).scalar_one_or_none()
            if row is None:
                raise RegistryError(f"model '{name}' has no version {version}")
            aliases = session.execute(sa.select(ModelAlias.alias).where(ModelAlias.model_name == name,
                                                                        ModelAlias.version == version)).scalars().all()
            serving = session.get(ServingVariant, (name, version))
            return {"name": name, "version": version, "run_id": row.run_id, "family": row.family, "task": row.task,
                    "uri": ArtifactStore(self.root).path_uri(row.uri), "sha256": row.sha256, "metrics": row.metrics, "lineage": row.lineage,
                    "created": row.created, "aliases": sorted(aliases),
                    "serving_variant": serving.variant if serving else None,
                    "serving_runtime": serving.runtime if serving else None,
                    "serving_sha256": serving.sha256 if serving else None}

    def _version_files(self, name: str, version: int | None, alias: str | None) -> tuple[dict, dict[str, bytes]]:
        """A version's row and its stored files, hash-checked."""
        check_name(name, "model name")
        info = self.version_info(name, self.resolve(name, version, alias))
        self._check_signature(name, info["version"], info["sha256"])
        ref = ArtifactRef(run_id=info["run_id"], stage="registry", name=name, kind="bundle",
                          path=f"models/{name}/{info['sha256']}", sha256=info["sha256"])
        return info, ArtifactStore(self.root).read_bundle(ref)

    def _check_signature(self, name: str, version: int, sha256: str) -> None:
        """With a signing key set, the version must carry the signature of its name, number and files' hash.

        Raises:
            RegistryError: It is unsigned, or signed for other content or with another key.
        """
        import hmac

        expected = _signature(name, version, sha256)
        if expected is None:
            return
        with Session(self.engine) as session:
            stored = session.execute(sa.select(ModelVersion.signature).where(
                ModelVersion.model_name == name, ModelVersion.version == version)).scalar_one_or_none()
        if stored is None:
            raise RegistryError(f"model '{name}' v{version} is not signed, and this deployment loads only signed "
                                f"versions ({SIGNING_KEY_ENV} is set)")
        if not hmac.compare_digest(stored, expected):
            raise RegistryError(f"model '{name}' v{version}: its signature does not match its files' hash: not "
                                "registered by a holder of this deployment's key")

    def load(self, name: str, version: int | None = None, alias: str | None = "production",
             variant: str = "native") -> tuple[Any, dict]:
        """Load a version's model and metadata (by number, or by alias).

        Args:
            variant: ``native`` (the Pipeline as trained), ``serving`` (the variant the compress stage chose for
                the version, or the native Pipeline when it has none), or a variant's name or runtime (``onnx``),
                which must be the version's serving variant.

        Raises:
            RegistryError: The version has no such variant, or its files do not match their recorded hash.
        """
        info, files = self._version_files(name, version, alias)
        from trainflow.models.bundle import load_bundle  # scikit-learn, only when a model is loaded

        facts = {"registry_version": info["version"], "aliases": info["aliases"]}
        if variant != "native" and info["serving_variant"] is not None:
            if variant not in ("serving", info["serving_variant"], info["serving_runtime"]):
                raise RegistryError(f"model '{name}' v{info['version']} is served by '{info['serving_variant']}' "
                                    f"({info['serving_runtime']}); it has no variant '{variant}' (ask for native or "
                                    "serving)")
            from trainflow.export import load_variant

            served = {k.removeprefix(SERVING_PREFIX): v for k, v in files.items() if k.startswith(SERVING_PREFIX)}
            if folder_digest(served) != info["serving_sha256"]:
                raise RegistryError(f"model '{name}' v{info['version']}: the serving variant's files do not match "
                                    "their recorded sha256")
            model, meta = load_variant(served)
            return model, {**meta, **facts, "variant": info["serving_variant"]}
        if variant not in ("native", "serving"):
            raise RegistryError(f"model '{name}' v{info['version']} has no serving variant; it has no variant "
                                f"'{variant}' (ask for native)")
        pipeline, meta = load_bundle({k: v for k, v in files.items() if not k.startswith(SERVING_PREFIX)})
        return pipeline, {**meta, **facts, "variant": "native"}

    def load_profile(self, name: str, version: int | None = None, alias: str | None = "production") -> pd.DataFrame:
        """The drift reference profile stored with a version.

        Raises:
            RegistryError: The version was registered without a profile.
        """
        info, files = self._version_files(name, version, alias)
        if PROFILE_FILE not in files:
            raise RegistryError(f"model '{name}' v{info['version']} has no reference profile")
        return pq.read_table(pa.BufferReader(files[PROFILE_FILE])).to_pandas()

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every registry table as a DataFrame (for export to Parquet)."""
        with self.engine.connect() as conn:
            return {t.name: pd.read_sql_table(t.name, conn) for t in Base.metadata.sorted_tables}


def load_model(name: str, version: int | None = None, alias: str | None = "production",
               registry_url: str | None = None, variant: str = "native") -> Any:
    """Load a registered model in one call: ``load_model("adult").predict(df)``.

    ``variant="serving"`` (or ``"onnx"``) gives the version's serving variant, an object with the same
    ``predict``/``predict_proba``/``classes_`` taking the same rows (``trainflow.features.as_model_input``)."""
    registry = Registry(registry_url)
    try:
        return registry.load(name, version, alias, variant)[0]
    finally:
        registry.close()


def listed_metrics(info: dict[str, Any]) -> dict[str, float]:
    """The test metrics ``registry list`` shows: the one the version was selected by (its run's
    ``train.selection_metric``, else the task's default), marked, then two more."""
    from trainflow.metrics import DEFAULT_METRIC

    settings = ((info.get("lineage") or {}).get("settings") or {}).get("train") or {}
    chosen = settings.get("selection_metric") or DEFAULT_METRIC.get(info.get("task") or "", "")
    metrics = info["metrics"] or {}
    first = {f"{chosen} (selection)": metrics[chosen]} if chosen in metrics else {}
    return {**first, **dict([(k, v) for k, v in metrics.items() if k != chosen][:2])}
