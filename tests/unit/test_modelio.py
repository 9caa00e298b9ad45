"""Skops files: only allow-listed types load, and models written before the library package still do."""

from __future__ import annotations

import io
import zipfile

import pytest
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from trainflow.errors import ArtifactError
from trainflow.features import CategoryCoder
from trainflow.modelio import dump_skops, load_skops


class Smuggled(BaseEstimator):
    """A type no model of this project contains."""


def renamed(data: bytes, old: str, new: str) -> bytes:
    """The file with one module name in its schema replaced, as an older or a tampered file would have it."""
    with zipfile.ZipFile(io.BytesIO(data)) as src, io.BytesIO() as buffer:
        with zipfile.ZipFile(buffer, "w") as dst:
            for item in src.infolist():
                content = src.read(item)
                item.compress_type = zipfile.ZIP_STORED  # files before 2026-11-29 were not deflated
                dst.writestr(item, content.replace(f'"{old}"'.encode(), f'"{new}"'.encode()))
        return buffer.getvalue()


def test_a_file_naming_a_type_outside_the_allow_list_is_refused() -> None:
    data = dump_skops(Pipeline([("x", Smuggled())]))
    with pytest.raises(ArtifactError, match="untrusted types.*Smuggled"):
        load_skops(data)
    with pytest.raises(ArtifactError, match="not a readable skops file"):
        load_skops(b"not a zip file")


def test_a_model_written_when_transformers_lived_in_tasks_still_loads() -> None:
    old = renamed(dump_skops(Pipeline([("codes", CategoryCoder(min_frequency=3))])), "trainflow.features",
                  "tasks.transform")
    assert b'"tasks.transform"' in old
    loaded = load_skops(old)
    assert isinstance(loaded.steps[0][1], CategoryCoder) and loaded.steps[0][1].min_frequency == 3
    # only the project's own old modules are renamed: any other module stays untrusted
    with pytest.raises(ArtifactError, match="untrusted types"):
        load_skops(renamed(dump_skops(CategoryCoder()), "trainflow.features", "tasks.evil"))


def test_a_builtin_callable_named_in_a_file_is_refused() -> None:
    data = renamed(dump_skops(Pipeline([("x", Smuggled())])), "tests.unit.test_modelio", "builtins")
    with pytest.raises(ArtifactError, match="untrusted types.*builtins.Smuggled"):
        load_skops(data)
