"""Prefect cache policy for stages whose inputs are artifact references.

Prefect's INPUTS policy would hash each reference whole, run id and path included, so two runs on
identical data would never share a cache entry. CONTENT hashes what a stage's output really
depends on, the artifacts' sha256 and the settings, plus the task's source code (TASK_SOURCE), and
leaves out the run id: re-running an unchanged flow reuses every deterministic stage.

TASK_SOURCE covers only the decorated function's own lines, and a stage's result also depends on
the helpers it calls (metrics, transformers, estimators), so the key includes a digest of every
module in ``tasks/`` and in this library as well: editing any stage code invalidates the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from prefect.cache_policies import TASK_SOURCE, CacheKeyFnPolicy
from pydantic import BaseModel

from trainflow import PROJECT_ROOT
from trainflow.catalog import ArtifactRef, ArtifactStore

IGNORED_PARAMETERS = frozenset({"run_id"})
# a point in time differs on every run: the key holds only whether there is one (limited or not)
DEADLINE_PARAMETERS = frozenset({"deadline"})


def _content(value: Any) -> Any:
    if isinstance(value, ArtifactRef):
        return {"artifact": value.kind, "sha256": value.sha256}
    if isinstance(value, BaseModel):
        return _content(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): _content(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_content(v) for v in value]
    return value


@functools.cache
def stage_code_digest() -> str:
    """sha256 over the source of every module in ``tasks/`` and ``trainflow/`` (read once per process)."""
    digest = hashlib.sha256()
    for path in sorted(PROJECT_ROOT.glob("tasks/**/*.py")) + sorted(PROJECT_ROOT.glob("trainflow/**/*.py")):
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def content_key(context: Any, parameters: dict[str, Any]) -> str:
    """Cache key from the content of the task's inputs (artifact hashes, settings) and the stage code,
    without the run id."""
    payload = {k: (v is not None) if k in DEADLINE_PARAMETERS else _content(v)
               for k, v in sorted(parameters.items()) if k not in IGNORED_PARAMETERS}
    payload["__code__"] = stage_code_digest()
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


CONTENT = TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=content_key)


def artifact_refs(value: Any) -> list[ArtifactRef]:
    """Every artifact reference inside a stage's result (a reference, or dicts and lists of them)."""
    if isinstance(value, ArtifactRef):
        return [value]
    if isinstance(value, dict):
        return [r for v in value.values() for r in artifact_refs(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in artifact_refs(v)]
    return []


def run_checked(stage: Any, root: str, *args: Any, **kwargs: Any) -> Any:
    """Call a cached stage, ``stage(root, *args, **kwargs)`` (every stage takes the store root first); when
    Prefect answers from its cache, check every artifact the cached result points at (it exists, its sha256
    matches). A missing or changed one (an old run deleted, a file edited) means the entry is stale: the stage
    runs again with ``refresh_cache``, which replaces the entry, and the run goes on with fresh artifacts."""
    from prefect import get_run_logger

    args = (root, *args)
    state = stage(*args, return_state=True, **kwargs)
    result = state.result()
    if state.name != "Cached":
        return result
    store = ArtifactStore(root)
    stale = [ref.path for ref in artifact_refs(result) if not store.is_intact(ref)]
    if not stale:
        return result
    get_run_logger().warning("%s: the cached result points at %d artifact(s) missing or changed since they were "
                             "written (%s); running the stage again", stage.name, len(stale), ", ".join(stale[:3]))
    return stage.with_options(refresh_cache=True)(*args, **kwargs)
