"""Production on a work pool, as docs/operations.md sets it up: `prefect server start` on SQLite and, in the other
variant, on PostgreSQL (PREFECT_API_DATABASE_CONNECTION_URL); `make deploy` (a process work pool holding every
deployment of deployments/prefect.yaml); two `make worker` processes. A schedule fires while a run started as the
UI's Run button starts it is due: both go through the workers, and the deployment's concurrency limit of 1 holds
across both workers (the two runs do not overlap). test_work_pool_sqlite.py and test_work_pool_postgresql.py run
these checks, two files so that pytest-xdist runs them side by side."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

from prefect.client.base import PrefectHttpxSyncClient

from deployments.serve import load_declarations
from tests.prefect_server import stop

ROOT = Path(__file__).resolve().parents[2]
POOL = "trainflow"  # the pool deployments/prefect.yaml names
FIRES_IN = 10  # seconds from making the deployment to its schedule's first run


def _settings(tmp: Path) -> dict:
    """A training run that takes seconds: breast_cancer, the fast preset, nothing measured twice."""
    return {"dataset": "breast_cancer", "preset": "fast", "time_limit": 0, "tune": {"enabled": False},
            "evaluate": {"cv_folds": 0, "permutation_repeats": 0, "plots": False}, "compress": {"enabled": "off"},
            "artifacts_root": str(tmp / "artifacts"), "registry": {"registry_url": f"sqlite:///{tmp / 'registry.db'}"}}


def _make(target: str, env: dict, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    # -o: the installed .venv counts as up to date (the tests run in it; never reinstall from a test)
    argv = ["make", "--no-print-directory", "-o", ".venv/.installed", target, f"BIN={Path(sys.executable).parent}"]
    if kw.pop("background", False):
        return subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True, **kw)
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def _runs(http: PrefectHttpxSyncClient, api: str, deployment_id: str) -> list[dict]:
    body = {"deployments": {"id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return http.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()


def check_two_workers_one_at_a_time(server: tuple[str, dict], tmp_path: Path) -> None:
    """The checks of the module docstring against a started server."""
    api, env = server
    http = PrefectHttpxSyncClient(raise_on_all_errors=False)  # the server answers 503 while SQLite is busy
    deployed = _make("deploy", env)  # the documented commands: a process pool, prefect.yaml deployed to it
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    deployments = http.post(f"{api}/deployments/filter", json={}, timeout=10).json()
    # every deployment of the project's file is in the pool, with the working directory its runs start in
    assert {d["name"] for d in deployments} == {d["name"] for d in load_declarations()}
    assert {d["work_pool_name"] for d in deployments} == {POOL}
    assert all(d["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
               for d in deployments)

    # this test's deployment beside them, made through the API as `prefect deploy` makes it: the training flow
    # as deployed, limited to one run at a time, with a schedule that first fires soon (a first run time already
    # past when the deployment is made would never be scheduled, and the next is a day later)
    declared = next(d for d in load_declarations() if d["entrypoint"] == "flows/training.py:training")
    project = next(d for d in deployments if d["name"] == declared["name"])
    first_fire = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=FIRES_IN)
    made = http.post(f"{api}/deployments/", timeout=10, json={
        **{k: project[k] for k in ("flow_id", "entrypoint", "path", "pull_steps", "parameter_openapi_schema",
                                   "enforce_parameter_schema", "job_variables", "work_pool_name", "tags")},
        "name": "cancer-one-at-a-time", "concurrency_limit": 1, "parameters": {"settings": _settings(tmp_path)},
        "schedules": [{"schedule": {"interval": 86400, "anchor_date": first_fire.isoformat()}, "active": True}]})
    assert made.status_code in (200, 201), made.text
    ours = made.json()
    assert dt.datetime.now(dt.UTC) < first_fire

    # a run as the UI's Run button makes it (the deployment's parameters, untouched); the workers start once the
    # scheduler's run is due too, so that both wait for them at once and each worker could take one
    clicked = [http.post(f"{api}/deployments/{ours['id']}/create_flow_run", json={"state": {"type": "SCHEDULED"}},
                         timeout=10).json()["id"]]
    for _ in range(120):
        if dt.datetime.now(dt.UTC) > first_fire and any(r["auto_scheduled"] for r in _runs(http, api, ours["id"])):
            break
        time.sleep(1)
    workers = [_make("worker", env, background=True, stdout=open(tmp_path / f"worker{i}.log", "w"),
                     stderr=subprocess.STDOUT) for i in range(2)]
    try:
        deadline = time.time() + 420
        while time.time() < deadline:
            runs = _runs(http, api, ours["id"])
            fired = [r for r in runs if r["id"] not in clicked and r["auto_scheduled"]
                     and r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]
            done = [r for r in runs if r["id"] in clicked and r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]
            if done and fired:
                break
            time.sleep(2)
        else:
            raise AssertionError(f"runs not finished: {[(r['name'], r['state_type']) for r in runs]}")
        ran = [done[0], fired[0]]
        assert all(r["state_type"] == "COMPLETED" for r in ran), [(r["name"], r["state_name"]) for r in ran]
        # each on a worker of the pool: a process it started (its pid), from the pool's queue
        assert all(r["work_pool_name"] == POOL and r["infrastructure_pid"] for r in ran)
        registered = http.post(f"{api}/work_pools/{POOL}/workers/filter", json={}, timeout=10).json()
        assert len(registered) == 2
        # the limit of one held across both workers: no two runs overlapped
        spans = sorted((dt.datetime.fromisoformat(r["start_time"]), dt.datetime.fromisoformat(r["end_time"]))
                       for r in ran)
        assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), spans
    finally:
        stop(workers, group=True)  # each `make worker` and the worker it started
