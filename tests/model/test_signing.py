"""Signed versions (TRAINFLOW_SIGNING_KEY), on SQLite and PostgreSQL: a deployment with a key signs what it
registers and loads only what carries its signature, so that a file planted in the registry's folder with its
hash planted in the database is refused, and so is a version registered without the key."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.model.test_registry import _bundle
from trainflow.catalog import ArtifactStore, folder_digest
from trainflow.errors import RegistryError
from trainflow.registry import SIGNING_KEY_ENV, ModelVersion, Registry


def test_a_planted_file_with_a_planted_hash_is_refused(registry_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY_ENV, "a key the registry never sees")
    registry = Registry(registry_url)
    try:
        registry.register("m", _bundle(1), "run-1", "logistic", "binary", {"roc_auc": 0.8}, {})
        assert registry.load("m")[1]["family"] == "logistic"  # signed here, loads here
        planted = _bundle(99)  # another model, stored as the registry stores files, its hash written in the row
        sha256 = folder_digest(planted)
        ArtifactStore(registry.root).put_folder(f"models/m/{sha256}", planted)
        with registry.engine.begin() as conn:
            conn.execute(sa.update(ModelVersion).where(ModelVersion.version == 1).values(
                sha256=sha256, uri=f"models/m/{sha256}"))
        with pytest.raises(RegistryError, match="signature does not match"):
            registry.load("m")
        monkeypatch.delenv(SIGNING_KEY_ENV)
        assert registry.load("m")[0] is not None  # what the key adds: without one the planted pair loads
    finally:
        registry.close()


def test_an_unsigned_version_is_refused_where_a_key_is_set(registry_url: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)
    registry = Registry(registry_url)
    try:
        registry.register("m", _bundle(1), "run-1", "logistic", "binary", {"roc_auc": 0.8}, {})
        monkeypatch.setenv(SIGNING_KEY_ENV, "the deployment's key")
        with pytest.raises(RegistryError, match="is not signed"):
            registry.load("m")
        monkeypatch.setenv(SIGNING_KEY_ENV, "another key")
        registry.register("m", _bundle(2), "run-2", "logistic", "binary", {"roc_auc": 0.8}, {})
        monkeypatch.setenv(SIGNING_KEY_ENV, "the deployment's key")
        with pytest.raises(RegistryError, match="signature does not match"):
            registry.load("m", version=2, alias=None)
    finally:
        registry.close()
