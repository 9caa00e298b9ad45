"""Against a real `prefect server start`: the deployments are served, scheduled, and run from the API
exactly as the UI's Run button runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from deployments.simulate import simulate
from deployments.ui import wait_healthy
from tasks.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("server")
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    base.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
    port = _free_port()
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


def _deployments(api: str, expected: int, timeout: float = 120) -> list[dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = httpx.post(f"{api}/deployments/filter", json={"limit": 50}, timeout=10).json()
        if len(found) >= expected:
            return found
        time.sleep(1)
    raise AssertionError(f"only {len(found)} deployments registered after {timeout} s")


def _run_and_wait(api: str, deployment_id: str, parameters: dict, timeout: float = 420) -> dict:
    # what the UI's Run button posts (a custom run sends the form's parameters)
    run = httpx.post(f"{api}/deployments/{deployment_id}/create_flow_run", json={"parameters": parameters},
                     timeout=30).json()
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = httpx.get(f"{api}/flow_runs/{run['id']}", timeout=10).json()
        if state["state_type"] in TERMINAL:
            return state
        time.sleep(2)
    raise AssertionError(f"flow run {run['id']} not finished after {timeout} s (state {state['state_type']})")


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
        "evaluate": {"cv_folds": 0, "permutation_repeats": 0}}}
    first = _run_and_wait(api, nightly["id"], {"settings": settings})
    assert first["state_type"] == "COMPLETED", first["state"]
    for day in days[1:]:
        day.rename(inbox / day.name)
    second = _run_and_wait(api, nightly["id"], {"settings": settings})
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
