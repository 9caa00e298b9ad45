"""Skops files: only allow-listed types load, and models written before the library package still do."""

from __future__ import annotations

import functools
import io
import operator
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


CALLABLES = {  # what a crafted file can name under the old "numpy." / "scipy." prefixes, and what it would do
    "numpy.testing._private.utils.runstring": "exec() of a string",
    "numpy.ctypeslib.load_library": "loads a shared library",
    "numpy.load": "unpickles with allow_pickle=True",
    "numpy.f2py.f2py2e.run_main": "runs a compiler",
    "numpy.lib._utils_impl.safe_eval": "evaluates a string",
    "scipy.io.matlab._mio.loadmat": "reads any file",
}


@pytest.mark.parametrize("name", sorted(CALLABLES))
def test_a_crafted_file_naming_a_numpy_or_scipy_callable_is_refused(name: str) -> None:
    import importlib

    from sklearn.preprocessing import FunctionTransformer

    module, attr = name.rsplit(".", 1)
    func = getattr(importlib.import_module(module), attr)
    crafted = dump_skops(Pipeline([("f", FunctionTransformer(func=func, kw_args={"allow_pickle": True}))]))
    assert name.startswith(("numpy.", "scipy."))  # a prefix allow-list admitted it
    with pytest.raises(ArtifactError, match=f"untrusted types.*{name}"):
        load_skops(crafted)


@pytest.mark.parametrize("func, names", [
    (functools.partial(eval, "1"), ["builtins.eval", "functools.partial"]),
    (operator.attrgetter("__globals__"), ["operator.attrgetter"]),
    (operator.methodcaller("system", "id"), ["operator.methodcaller"]),
])
def test_partials_and_operator_tricks_are_refused(func, names: list[str]) -> None:
    from sklearn.preprocessing import FunctionTransformer

    crafted = dump_skops(Pipeline([("f", FunctionTransformer(func=func))]))
    with pytest.raises(ArtifactError, match="untrusted types") as refused:
        load_skops(crafted)
    assert all(n in str(refused.value) for n in names)
