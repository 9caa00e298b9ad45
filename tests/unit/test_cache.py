"""The content cache key: same content and settings, same key, whatever the run."""

from trainflow.cache import content_key
from trainflow.catalog import ArtifactRef
from tasks.split import SplitSettings


def _ref(run: str, sha: str) -> ArtifactRef:
    return ArtifactRef(run_id=run, stage="ingest", name="raw", kind="table", path=f"runs/{run}/ingest/raw.parquet",
                       sha256=sha, rows=3)


def test_key_ignores_run_but_not_content_or_settings() -> None:
    base = {"store_root": "/d", "run_id": "r1", "data": _ref("r1", "aa"), "settings": SplitSettings(), "seed": 1}
    same = {**base, "run_id": "r2", "data": _ref("r2", "aa")}
    assert content_key(None, base) == content_key(None, same)
    assert content_key(None, base) != content_key(None, {**base, "data": _ref("r1", "bb")})
    assert content_key(None, base) != content_key(None, {**base, "settings": SplitSettings(test_fraction=0.2)})
    assert content_key(None, base) != content_key(None, {**base, "seed": 2})
