"""How many threads a fit gets: decided here, once, for every library that starts threads of its own (LightGBM's
and CatBoost's OpenMP, scikit-learn's joblib, torch, ONNX Runtime, the BLAS under numpy and scipy).

The cores a process may use are joblib's count (CPU affinity and a cgroup's CPU quota, not the machine's cores).
A fit gets those cores shared among the fits the flow runs at once (parallel tuning workers). Libraries that
meet at a barrier after every step (LightGBM's and CatBoost's OpenMP rounds, ONNX Runtime's spinning pool) get
one thread below ``MIN_CORES_FOR_THREADS`` cores: on a busy core every barrier waits for the thread that lost
it. On this 2-core machine two threads made LightGBM 0.62x one thread's time idle but 1.94x beside one busy
process, CatBoost 0.70x and 1.08x; a forest's joblib trees (no barrier) 0.53x and 0.79x, logistic regression's
BLAS 0.53x and 1.12x (``python -m benchmarks.threads``; benchmarks/README.md). A machine shared with other work
is the common case here, so the barrier libraries give up the idle gain to never lose 2x.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# below this many usable cores a fit gets one thread (measured: benchmarks/threads.py)
MIN_CORES_FOR_THREADS = 4


def usable_cores() -> int:
    """The cores this process may use: CPU affinity and a cgroup's CPU quota (joblib's count), at least 1."""
    import joblib

    return max(1, int(joblib.cpu_count()))


def fit_threads(n_jobs: int | None = None, concurrent: int = 1, barrier: bool = False) -> int:
    """The threads one fit (or one inference session) gets.

    Args:
        n_jobs: The settings' request: a positive count is used as it is, -1 means every usable core (as in
            scikit-learn), None lets this module choose.
        concurrent: Fits the flow runs at once (parallel tuning workers); they share the cores.
        barrier: The library's threads wait for each other after every step (OpenMP boosting rounds, ONNX
            Runtime): one thread below ``MIN_CORES_FOR_THREADS`` cores.

    Returns:
        At least 1.
    """
    if n_jobs is not None and n_jobs > 0:
        return n_jobs
    cores = usable_cores()
    if n_jobs is not None:  # -1 (or any negative): every core, as asked
        return cores
    share = max(1, cores // max(1, concurrent))
    return 1 if barrier and share < MIN_CORES_FOR_THREADS else share


@contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """Run the body with torch's intra-op pool at ``threads`` (when a family already imported torch: importing it
    costs seconds); microseconds, where ``limited`` inspects every loaded library (milliseconds): a network's
    predictions take this one, a single-row call included."""
    import sys

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else threads
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        if before != threads:
            torch.set_num_threads(before)


@contextmanager
def limited(threads: int) -> Iterator[int]:
    """Run the body with the BLAS and OpenMP pools (threadpoolctl) and torch's intra-op pool at ``threads``;
    libraries that take a count per call (LightGBM, CatBoost, joblib, ONNX Runtime) get it from their
    builders."""
    from threadpoolctl import threadpool_limits

    with torch_threads(threads), threadpool_limits(limits=threads):
        yield threads
