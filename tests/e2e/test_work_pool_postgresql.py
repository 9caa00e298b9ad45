"""Two workers on a process work pool, the Prefect server on PostgreSQL (PREFECT_API_DATABASE_CONNECTION_URL; the
checks: tests/e2e/work_pool.py)."""

from pathlib import Path

import pytest

from tests.e2e.work_pool import check_two_workers_one_at_a_time
from tests.prefect_server import prefect_server

pytestmark = pytest.mark.slow(seconds=85)  # a Prefect server on PostgreSQL, a pool and two workers


def test_scheduled_and_ui_runs_go_through_two_workers_one_at_a_time(postgres_server: str, tmp_path: Path) -> None:
    with prefect_server("postgresql", tmp_path, postgres_server) as server:
        check_two_workers_one_at_a_time(server, tmp_path)
