"""The Dask cluster work is sent to: one client per scheduler address, kept for the process.

A scheduler address is trusted the way a database URL is: what runs there sees the data, and results come
back from it. ``local`` starts a LocalCluster of two single-threaded worker processes on this machine.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

_CLIENTS: dict[str, Any] = {}
_LOCK = threading.Lock()


def dask_client(address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` (``tcp://host:8786``, or ``local``), made on first
    use and reused by every fit and batch of the process after it (made again if it was closed).

    Raises:
        TrainflowError: The ``dask`` extra is not installed.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - an extra: say what to install
        from trainflow.errors import TrainflowError

        raise TrainflowError("a Dask engine needs the 'dask' extra: pip install 'trainflow[dask]'") from exc
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its start and stop, not every worker's line
    with _LOCK:
        client = _CLIENTS.get(address)
        if client is None or client.status != "running":
            client = Client(LocalCluster(n_workers=2, threads_per_worker=1) if address == "local" else address)
            _CLIENTS[address] = client
        return client


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
