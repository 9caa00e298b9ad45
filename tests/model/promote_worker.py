"""What each of test_registry.py's promoting processes runs: a module of its own, so that a spawned process imports
the registry alone, not the test module's model families (seconds of imports each)."""

from __future__ import annotations

import multiprocessing as mp

from trainflow.registry import Registry


def promote(url: str, version: int, expected: int, results: mp.Queue) -> None:
    """Promote ``version`` of model ``m`` if production is still ``expected``; put ``(version, won)`` on ``results``."""
    reg = Registry(url)
    results.put((version, reg.promote("m", version, expected, reason="test")))
    reg.close()
