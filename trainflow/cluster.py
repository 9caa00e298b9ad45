"""The Dask cluster work is sent to: one client per scheduler address, kept for the process.

A scheduler sees the data sent to it and its results are unpickled here, so a form field or flag alone never
chooses one: an address must be listed in ``TRAINFLOW_DASK_SCHEDULERS`` (comma-separated) by whoever runs
the deployment or the command (``check_scheduler``). ``local`` starts a LocalCluster of two single-threaded
worker processes on this machine.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from trainflow.credentials import mask
from trainflow.errors import TrainflowError
from trainflow.forms import FormModel

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

SCHEDULERS_ENV = "TRAINFLOW_DASK_SCHEDULERS"
LOCAL_WORKERS = 2  # the processes of the ``local`` cluster, one thread each
_CLIENTS: dict[str, Any] = {}
_LOCK = threading.Lock()


class ComputeSettings(FormModel):
    """Where the data stages run."""

    engine: Literal["local", "dask"] = Field("local", description=(
        "local: in this process, batch by batch; dask: ingest (of a Parquet source), validate, split and transform "
        "run part by part on the workers of a Dask cluster, which read and write the artifacts themselves (the "
        "artifacts root must be reachable from them), LightGBM trains with lightgbm.dask there, and tuning runs a "
        "trial per worker (through prefect-dask; 'local': a temporary cluster of its own)"))
    dask_address: str = Field("local", description="the scheduler of engine dask: local (a LocalCluster of 2 workers "
                                                   "on this machine) or tcp://host:8786, which "
                                                   "TRAINFLOW_DASK_SCHEDULERS must list")


def on_dask(compute: ComputeSettings | None) -> bool:
    """Whether a stage given ``compute`` (None: a caller that never runs on a cluster) runs on Dask."""
    return compute is not None and compute.engine == "dask"


def map_parts(address: str, fn: Callable[..., Any], items: Iterable[Any], *args: Any) -> list[Any]:
    """``[fn(item, *args) for item in items]``, each call a task on the Dask cluster at ``address``, results in
    the items' order. ``args`` (the same for every call: a schema, a fitted preprocessor) go to the workers once;
    an error in any call is raised here and the calls not yet run are cancelled."""
    client = dask_client(address)
    # keys of their own (hash=False): the same object scattered by the call before, under its content's key, may
    # still be on its way out of the cluster
    shared = [client.scatter([a], broadcast=True, hash=False)[0] for a in args]
    futures = [client.submit(fn, item, *shared, pure=False) for item in items]
    try:
        return client.gather(futures)
    finally:
        client.cancel(futures)  # the calls not run yet after an error; the shared values go with their futures


def check_scheduler(address: str, setting: str) -> None:
    """Refuse a scheduler address ``TRAINFLOW_DASK_SCHEDULERS`` does not list (``local`` is always allowed).

    Raises:
        TrainflowError: Naming the setting, the address (any password masked) and the variable to set.
    """
    allowed = {a.strip() for a in os.environ.get(SCHEDULERS_ENV, "").split(",") if a.strip()}
    if address != "local" and address not in allowed:
        raise TrainflowError(f"{setting} {mask(address)!r} is not a Dask scheduler this deployment trusts: list it "
                             f"in {SCHEDULERS_ENV} (comma-separated), or use 'local'")


def dask_client(address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` (``tcp://host:8786``, or ``local``), made on first
    use and reused by every fit and batch of the process after it (made again if it was closed).

    Raises:
        TrainflowError: The address is not trusted (:func:`check_scheduler`), or the ``dask`` extra is missing.
    """
    check_scheduler(address, "dask_address")
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - an extra: say what to install
        raise TrainflowError("a Dask engine needs the 'dask' extra: pip install 'trainflow[dask]'") from exc
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its start and stop, not every worker's line
    with _LOCK:
        client = _CLIENTS.get(address)
        if client is None or client.status != "running":
            # not the process's default client: prefect-dask would take a default client's cluster for tuning's
            # trials, whose workers (started without this run's PREFECT_API_URL) would each start a Prefect server
            client = Client(LocalCluster(n_workers=LOCAL_WORKERS, threads_per_worker=1) if address == "local"
                            else address, set_as_default=False)
            _CLIENTS[address] = client
        return client


def worker_count(address: str) -> int:
    """How many workers the cluster at ``address`` has now (``local``: :data:`LOCAL_WORKERS`, nothing started)."""
    if address == "local":
        return LOCAL_WORKERS
    return max(1, len(dask_client(address).scheduler_info()["workers"]))


def close_clients() -> None:
    """Close every client made here, and the LocalClusters they started (a test session's end, a long-lived
    worker's shutdown)."""
    with _LOCK:
        for client in _CLIENTS.values():
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
        _CLIENTS.clear()


def task_runner(dask_address: str | None, parallel: int, setting: str = "tune.dask_address") -> TaskRunner:
    """The Prefect task runner for ``parallel`` tasks at once: threads, or a Dask cluster through prefect-dask
    at ``dask_address`` (``local``: a cluster of that many single-threaded processes started here), the
    address ``setting`` names in messages."""
    if dask_address is None:
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=parallel)
    check_scheduler(dask_address, setting)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as e:
        raise TrainflowError(f"{setting} needs prefect-dask: pip install 'trainflow[dask]'") from e
    if dask_address == "local":  # one single-threaded process per worker
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:  # this run's API, the temporary one too: tasks report there
            api = str(client.api_url)
        return DaskTaskRunner(cluster_kwargs={"n_workers": parallel, "threads_per_worker": 1,
                                              "processes": True,
                                              "env": {"PREFECT_API_URL": api}})
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        logging.getLogger(__name__).warning(
            "%s %s: no PREFECT_API_URL is set, so each Dask worker starts a temporary Prefect server "
            "of its own and the UI will not show the tune_trials runs; point PREFECT_API_URL at a Prefect server",
            dask_address)
    return DaskTaskRunner(address=dask_address)
