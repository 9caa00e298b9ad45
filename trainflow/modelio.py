"""Safe files for scikit-learn objects: skops, with an allow-list. The boosters' own formats (LightGBM's text,
CatBoost's ``cbm``) are in ``trainflow.models.boosters``, and a model bundle's files in
``trainflow.models.bundle``; this module knows no model family.

Nothing here unpickles. A skops file is loaded only after every type it names has been checked
against an exact allow-list (``ALLOWED_TYPES``: full type names, no prefixes), so a tampered file fails with the
names of the types it smuggles in.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any


from trainflow.errors import ArtifactError

# skops trusts plain data (builtins such as dict, list, str) and the scikit-learn estimators it has vetted; a file
# may name no other type than these and, for a model bundle, its family's own (``Family.skops_types``), each by its
# full name (a prefix such as "numpy." would admit callables that compile or run strings). These are what the
# preprocessor names: tests/model/test_skops_types.py saves it and every family's bundle and checks that each
# needs exactly these plus its family's.
ALLOWED_TYPES = frozenset({
    "numpy.dtype",  # the dtype of each array skops writes
    "trainflow.features.CalendarFeatures",  # the preprocessor's steps
    "trainflow.features.CategoryCoder",
    "trainflow.features.Imputer",
    "trainflow.features.QuantileClipper",
})
# where this project's classes lived before the library package: files written then name these modules
LEGACY_MODULES = {"tasks.transform": "trainflow.features", "tasks.modelio": "trainflow.modelio",
                  "tasks.baselines": "trainflow.models.baselines"}


def dump_skops(obj: Any) -> bytes:
    """Serialise a scikit-learn object with skops, its zip deflated (level 1: the fine_food TF-IDF model,
    whose 42,000-word vocabulary skops writes as JSON, is 9.3 MB instead of 46.8 MB, in the same time)."""
    import skops.io as sio  # here, not at import: it scans scikit-learn for its trusted types (seconds)

    return sio.dumps(obj, compression=zipfile.ZIP_DEFLATED, compresslevel=1)


def load_skops(data: bytes, also: frozenset[str] = frozenset()) -> Any:
    """Load skops bytes, trusting only ``ALLOWED_TYPES`` and ``also`` (a model family's own types).

    Raises:
        ArtifactError: The file names a type outside the allow-list.
    """
    import skops.io as sio

    data = _renamed_legacy_modules(data)
    untrusted = sio.get_untrusted_types(data=data)
    bad = [t for t in untrusted if t not in ALLOWED_TYPES | also]
    if bad:
        raise ArtifactError(f"refusing to load a skops file naming untrusted types: {bad}")
    return sio.loads(data, trusted=untrusted)


def _renamed_legacy_modules(data: bytes) -> bytes:
    """The skops file with the project's old module names (``LEGACY_MODULES``) replaced by today's, so that a
    model registered before the move still loads; the allow-list then checks the renamed types as usual."""

    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: rename(v) for k, v in node.items()}
            if out.get("__module__") in LEGACY_MODULES:
                out["__module__"] = LEGACY_MODULES[out["__module__"]]
            return out
        return [rename(v) for v in node] if isinstance(node, list) else node

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as old:
            schema = old.read("schema.json")
        if not any(f'"{name}"'.encode() in schema for name in LEGACY_MODULES):
            return data
        with zipfile.ZipFile(io.BytesIO(data)) as old, io.BytesIO() as buffer:
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as new:
                for item in old.infolist():
                    content = old.read(item)
                    if item.filename == "schema.json":
                        content = json.dumps(rename(json.loads(content))).encode()
                    new.writestr(item, content)
            return buffer.getvalue()
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ArtifactError(f"not a readable skops file: {exc}") from exc
