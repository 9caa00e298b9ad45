"""Against a real `prefect server start`: the deployments are served, scheduled, and run from the API
exactly as the UI's Run button runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from deployments.simulate import simulate
from deployments.ui import free_port, wait_healthy
from tasks.registry import Registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("server")
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    base.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    server_log = open(tmp / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                               str(port)], env={**base, "PREFECT_HOME": str(tmp / "server-home")}, cwd=ROOT,
                              stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
    serve_log = open(tmp / "serve.log", "w")
    served = None
    try:
        wait_healthy(url, timeout=180)
        served = subprocess.Popen([sys.executable, "-m", "deployments.serve"], cwd=ROOT, stdout=serve_log,
                                  stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**base, "PREFECT_HOME": str(tmp / "serve-home"), "PREFECT_API_URL": url})
        yield url
    finally:
        for proc in (served, server):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _deployments(api: str, expected: int, attempts: int = 120) -> list[dict]:
    for _ in range(attempts):
        found = httpx.post(f"{api}/deployments/filter", json={"limit": 50}, timeout=10).json()
        if len(found) >= expected:
            return found
        time.sleep(1)
    raise AssertionError(f"only {len(found)} deployments registered after {attempts} tries")


def _run_and_wait(api: str, name: str, parameters: dict, timeout: float = 420) -> dict:
    """Create a flow run of a deployment through the API, as the UI's Run button does, and wait for its end."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}):
        run = run_deployment(name, parameters=parameters, timeout=timeout)
    return httpx.get(f"{api}/flow_runs/{run.id}", timeout=10).json()


def test_api_accepts_the_nulls_the_ui_sends(api: str) -> None:
    # the UI posts filters with explicit nulls; fastapi 0.151+ made the server reject them (pyproject caps it)
    body = {"offset": None, "limit": None, "sort": None, "flows": None, "deployments": None}
    assert httpx.post(f"{api}/deployments/filter", json=body, timeout=10).status_code == 200


def test_served_deployments_schedule_and_run_retraining(api: str, tmp_path: Path) -> None:
    served = _deployments(api, 4)
    flows = {f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={}, timeout=10).json()}
    deps = {f"{flows[d['flow_id']]}/{d['name']}": d for d in served}
    assert set(deps) == {"training/adult", "inference/adult", "monitoring/adult", "retraining/adult-nightly"}
    nightly = deps["retraining/adult-nightly"]
    (schedule,) = nightly["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["schedule"]["timezone"] == "Europe/Berlin"
    assert "settings" in nightly["parameter_openapi_schema"]["properties"]  # the UI's parameter form
    assert nightly["parameters"]["settings"]["batches"] == "data/batches"

    days = simulate(tmp_path / "all", days=7, rows=1500, seed=5)
    inbox = tmp_path / "batches"
    inbox.mkdir()
    days[0].rename(inbox / days[0].name)
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    settings = {"batches": str(inbox), "training": {
        "artifacts_root": str(tmp_path / "artifacts"), "registry": {"registry_url": registry_url},
        "evaluate": {"cv_folds": 0, "permutation_repeats": 0}, "tune": {"enabled": False}}}
    first = _run_and_wait(api, "retraining/adult-nightly", {"settings": settings})
    assert first["state_type"] == "COMPLETED", first["state"]
    for day in days[1:]:
        day.rename(inbox / day.name)
    second = _run_and_wait(api, "retraining/adult-nightly", {"settings": settings})
    assert second["state_type"] == "COMPLETED", second["state"]

    registry = Registry(registry_url)
    versions = registry.tables()["model_versions"]
    assert versions["version"].tolist() == [1, 2]  # trained, then retrained on the drifted week
    events = registry.tables()["registry_events"]
    assert {"promotion_declined", "alias_set"} & set(events[events["version"] == 2]["event"])
    reports = list((tmp_path / "artifacts" / "runs").glob("*/drift/drift_report.parquet"))
    assert len(reports) == 1 and pd.read_parquet(reports[0])["drifted"].any()
    arts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": ["drift-adult"]}},
                                                       "limit": 5, "offset": 0, "sort": "CREATED_DESC",
                                                       "flow_runs": {}, "task_runs": {}}, timeout=10).json()
    assert arts and arts[0]["flow_run_id"] == second["id"]
