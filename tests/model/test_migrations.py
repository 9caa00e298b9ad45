"""The registry's schema under Alembic, on SQLite and PostgreSQL: the migrations make exactly the tables the code
declares; a registry made before migrations, holding versions, is upgraded when opened and reads every version
back; ``trainflow registry upgrade`` on an up-to-date registry changes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tests.model.test_registry import _bundle
from trainflow.registry import Base, Registry, _alembic, head_revision


def _root(url: str, tmp_path: Path) -> str | None:
    """Where the registry_url fixture put a PostgreSQL registry's files (a SQLite one keeps them beside it)."""
    return None if url.startswith("sqlite") else str(tmp_path / "registry-files")


def test_the_migrations_make_the_schema_the_code_declares(registry_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    Registry(registry_url).close()  # made (SQLite) or opened (PostgreSQL: the fixture made it)
    engine = sa.create_engine(registry_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_a_registry_made_before_migrations_is_upgraded_and_reads_every_version(registry_url: str,
                                                                                tmp_path: Path) -> None:
    from alembic import command

    registry = Registry(registry_url)
    for i in range(3):
        registry.register("m", _bundle(i), f"run-{i}", "logistic", "binary", {"roc_auc": 0.8 + i / 100}, {"i": i})
    registry.set_alias("m", "production", 2, reason="test")
    registry.close()
    engine = sa.create_engine(registry_url)  # back to the first schema, as create_all made it: no alembic_version
    with engine.begin() as conn:
        command.downgrade(_alembic(conn), "0001")
        conn.exec_driver_sql("DROP TABLE alembic_version")
    engine.dispose()

    registry = Registry(registry_url, root=_root(registry_url, tmp_path))
    try:
        assert (registry.revision_before, registry.revision) == ("0001", head_revision())
        x = pd.DataFrame({"a": [1.0, -1.0], "b": [0.0, 0.0]})
        for version in (1, 2, 3):
            pipeline, meta = registry.load("m", version=version, alias=None)
            assert meta["family"] == "logistic" and pipeline.predict(x).shape == (2,)
            assert registry.version_info("m", version)["lineage"] == {"i": version - 1}
        assert registry.resolve("m") == 2
        np.testing.assert_allclose(sorted(registry.tables()["model_versions"]["metrics"].map(
            lambda m: m["roc_auc"])), [0.8, 0.81, 0.82])
    finally:
        registry.close()


def test_upgrade_of_an_up_to_date_registry_changes_nothing(registry_url: str, capsys) -> None:
    from cli.main import main as trainflow

    registry = Registry(registry_url)
    registry.register("m", _bundle(1), "run-1", "logistic", "binary", {"roc_auc": 0.8}, {})
    before = {name: table.to_dict("records") for name, table in registry.tables().items()}
    registry.close()
    assert trainflow(["registry", "--registry-url", registry_url, "upgrade"]) == 0
    assert f"schema revision {head_revision()}, up to date" in capsys.readouterr().out
    registry = Registry(registry_url)
    assert {name: table.to_dict("records") for name, table in registry.tables().items()} == before
    registry.close()


def test_a_server_registry_is_created_with_its_files_root_from_the_command_line(postgres_server: str, tmp_path: Path,
                                                                               capsys) -> None:
    from cli.main import main as trainflow
    from tests.postgres import new_database

    url, files = new_database(postgres_server), str(tmp_path / "team-registry")
    assert trainflow(["registry", "--registry-url", url, "--files-root", files, "upgrade"]) == 0
    assert f"model files under {files}" in capsys.readouterr().out
    registry = Registry(url)  # a later opener, naming no root, reads the recorded one
    assert registry.root == files
    registry.close()
    # the root is recorded once: another does not move the files, it is refused in one line
    assert trainflow(["registry", "--registry-url", url, "--files-root", str(tmp_path / "other"), "upgrade"]) == 2
    err = capsys.readouterr().err
    assert f"keeps its model files under {files}" in err and len(err.strip().splitlines()) == 1
    sqlite = f"sqlite:///{tmp_path / 'r.db'}"
    Registry(sqlite).close()
    assert trainflow(["registry", "--registry-url", sqlite, "--files-root", files, "upgrade"]) == 2
    assert "--files-root is for a server registry" in capsys.readouterr().err
