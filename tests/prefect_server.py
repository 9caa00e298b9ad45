"""`prefect server start` for the end-to-end tests that need a real server (the work pools', the served
deployments'): a free loopback port, its own PREFECT_HOME, its log beside it, on SQLite or PostgreSQL; and the
migrated SQLite database every server of the tests starts from."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deployments.ui import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]


def migrated_database() -> Path:
    """A SQLite file with Prefect's schema at the installed Prefect's version, made once in ``.prefect/`` (by the
    first pytest worker to ask; the others wait on its lock): a server that starts on a copy skips the migrations,
    which took half of its start (7 of 15 s on 2 cores)."""
    import prefect
    from filelock import FileLock

    template = ROOT / ".prefect" / f"test-template-{prefect.__version__}.db"
    template.parent.mkdir(exist_ok=True)
    with FileLock(f"{template}.lock"):
        if not template.exists():
            partial = template.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            env = {**os.environ, "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{partial}"}
            subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "--yes"], env=env,
                           cwd=ROOT, check=True, capture_output=True, timeout=300)
            partial.rename(template)
    return template


def seed_database(path: Path) -> None:
    """A copy of ``migrated_database()`` at ``path``, unless a database is there already."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_database(), path)


@contextmanager
def prefect_server(backend: str, tmp_path: Path, postgres: str | None = None) -> Iterator[tuple[str, dict]]:
    """`prefect server start` on a free loopback port with its database on ``backend`` (sqlite, or postgresql on
    a new database of the ``postgres`` cluster), logging to ``tmp_path``/server.log; yields ``(api url, the
    environment its clients use)``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_LOGGING_LEVEL="WARNING", PREFECT_WORKER_QUERY_SECONDS="2", PREFECT_WORKER_PREFETCH_SECONDS="2",
               # a run held back by a deployment's concurrency limit asks again after 2 s, not the default 30
               PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS="2",
               # a served process (Prefect's runner) looks for due runs every 2 s, not 10
               PREFECT_RUNNER_POLL_FREQUENCY="2")
    database = {}
    if backend == "sqlite":
        seed_database(tmp_path / "prefect-home" / "prefect.db")  # the server's default database in its home
    if backend == "postgresql":
        from tests.postgres import new_database

        url = new_database(postgres)
        database = {"PREFECT_API_DATABASE_CONNECTION_URL": url.replace("postgresql+psycopg", "postgresql+asyncpg")}
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                                str(port)], env={**env, **database}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_healthy(api, timeout=180)
        yield api, {**env, "PREFECT_API_URL": api}
    finally:
        stop([process], grace=60)
        log.close()


def stop(processes: list[subprocess.Popen], grace: float = 30, group: bool = False) -> None:
    """SIGTERM to each process (``group``: to its process group), then SIGKILL to one still running after
    ``grace`` seconds: how a server, worker or served process stops is not the subject of any test (on a busy
    machine two Prefect workers once took over 60 s)."""
    def send(process: subprocess.Popen, sig: int) -> None:
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)

    for process in processes:
        send(process, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            send(process, signal.SIGKILL)
            process.wait(30)
