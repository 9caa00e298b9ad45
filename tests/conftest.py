"""Shared fixtures: a project-local Prefect home, one Prefect test harness per session, tiny data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Set before Prefect is imported anywhere: project-local state, no analytics, and room for the
# temporary server to start on a busy 2-core CI machine.
# Under pytest-xdist each worker is a process of its own: its own Prefect home (and temporary server), and one
# thread a fit (joblib's count, which trainflow.threads reads, and its processes inherit: the usable cores shared
# out among the workers), so that the fits' threads never add up to more than the machine has. No worker is
# pinned to a core: a test that waits on a server or a subprocess leaves its core to the other workers, where a
# pinned worker's core would idle.
from trainflow.threads import usable_cores  # noqa: E402 - no Prefect behind it

WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["LOKY_MAX_CPU_COUNT"] = str(max(1, usable_cores() // _workers))
os.environ["PREFECT_HOME"] = str(ROOT / ".prefect" / ("test" if not WORKER else f"test-{WORKER}"))
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect does not create parent folders
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

# the fuzz suite: a fixed seed and a bounded number of cases in CI; `--hypothesis-profile=long` for developers
hypothesis_settings.register_profile("ci", max_examples=25, derandomize=True, deadline=None)
hypothesis_settings.register_profile("long", max_examples=500, deadline=None)
hypothesis_settings.load_profile("ci")

from tasks.ingest import ingest_data  # noqa: E402
from trainflow.schema import DatasetSchema, load_schema  # noqa: E402


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (make test): a worker more than the usable cores. Many tests wait on a server, a scheduled run or
    a subprocess for seconds at a time; with a worker a core, that core idled meanwhile."""
    return usable_cores() + 1  # the controller's count: no LOKY_MAX_CPU_COUNT set in its process


def _slow_seconds(item: pytest.Item) -> float:
    """The ``slow`` marker's ``seconds`` (how long its module takes in ``make test``), 0 for a test not marked."""
    marker = item.get_closest_marker("slow")
    return 0.0 if marker is None else float(marker.kwargs.get("seconds", 0.0))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``slow`` modules' tests first, the longest module first (the others in collection order): pytest-xdist
    hands the files out in this order (make test turns off its reordering by test count), so the long ones start
    early, and the short files fill the end: no long file starts last while the other workers idle."""
    items.sort(key=lambda item: -_slow_seconds(item))


@pytest.fixture(scope="session")
def prefect_harness():
    """A real Prefect API (temporary database and server) for the whole session. Its database, and that of the
    temporary servers the commands this worker runs start, begin as copies of one migrated database."""
    import tempfile

    from prefect.settings import temporary_settings
    from prefect.testing import utilities

    from tests.prefect_server import seed_database

    def seeded_folder() -> str:  # where the harness puts its database (prefect-test.db)
        folder = tempfile.mkdtemp()
        seed_database(Path(folder) / "prefect-test.db")
        return folder

    seed_database(Path(os.environ["PREFECT_HOME"]) / "prefect.db")
    with ExitStack() as harness:
        with pytest.MonkeyPatch.context() as patch:  # for the harness's start only
            patch.setattr(utilities, "mkdtemp", seeded_folder)
            harness.enter_context(utilities.prefect_test_harness(server_startup_timeout=120))
        # no flow-run heartbeats, as a command on its temporary server has none (cli/run.py): nothing watches this
        # session's server for crashed runs, and each flow's end would wait up to a second for its heartbeat thread
        harness.enter_context(temporary_settings(updates={"flows.heartbeat_frequency": None}))
        yield


@pytest.fixture(autouse=True, scope="module")
def dask_clusters():
    """One local Dask cluster for a test file's tests (``trainflow.cluster.dask_client`` keeps the one made first;
    starting its worker processes cost seconds a test), closed when the file is done: an idle LocalCluster's
    heartbeats and monitors take about a tenth of a core, which the files after it would otherwise pay for."""
    yield
    from trainflow.cluster import close_clients

    close_clients()


@contextmanager
def logs_at_info() -> Iterator[None]:
    """The run loggers at INFO inside the block, as outside the tests (this file quiets them to WARNING)."""
    import logging

    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@pytest.fixture()
def run_logs_at_info():
    """The run loggers at INFO for one test (``logs_at_info``)."""
    with logs_at_info():
        yield


@pytest.fixture(scope="session")
def adult_schema() -> DatasetSchema:
    return load_schema("adult")


@pytest.fixture(scope="session")
def adult_raw(adult_schema: DatasetSchema) -> pd.DataFrame:
    """The bundled Adult data after ingest (32,561 rows)."""
    return ingest_data(adult_schema)[0]


@pytest.fixture()
def adult_sample(adult_raw: pd.DataFrame) -> pd.DataFrame:
    """2,000 Adult rows: small enough for fast flow tests, large enough for every category check."""
    return adult_raw.sample(2000, random_state=0).reset_index(drop=True)


@pytest.fixture()
def workdir(tmp_path: Path) -> dict[str, str]:
    """A fresh artifacts root and registry for one test."""
    return {"root": str(tmp_path / "artifacts"), "registry": f"sqlite:///{tmp_path / 'registry.db'}"}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback for the session (tests/postgres.py)."""
    from tests.postgres import postgres_cluster

    with postgres_cluster() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty registry on each backend a team may use: a SQLite file, and a PostgreSQL database (created
    with its model files under this test's folder, which every later opener reads from the database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'r.db'}"
    from tests.postgres import new_database
    from trainflow.registry import Registry

    url = new_database(request.getfixturevalue("postgres_server"))
    Registry(url, root=str(tmp_path / "registry-files")).close()
    return url
