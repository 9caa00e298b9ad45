"""Against a real `prefect server start`: the deployments are served; the scheduler service creates the
nightly runs and fires a scheduled retraining that the served process runs; a run started through the API,
as the UI's Run button does, retrains on a drifted week."""

from __future__ import annotations

import datetime as dt
import functools
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from prefect.client.base import PrefectHttpxSyncClient
import pandas as pd
import pytest
import yaml

from deployments.serve import load_declarations
from deployments.simulate import simulate
from cli.config import parse_settings
from flows.inference import InferenceSettings
from flows.monitoring import MonitoringSettings
from flows.retraining import RetrainingSettings
from flows.training import TrainingSettings, effective_settings
from trainflow.presets import with_preset
from trainflow.registry import Registry
from trainflow.schema import known_datasets, load_schema
from tests.prefect_server import prefect_server, stop
from tests.unit.test_forms import form_values

pytestmark = pytest.mark.slow(seconds=65)  # a Prefect server, a served process, a schedule that fires

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def _http() -> PrefectHttpxSyncClient:
    """The server answers 503 while its SQLite database is busy (the served runs write to it too) and Prefect's
    clients send the request again; a plain httpx call would fail these tests on the server's load."""
    return PrefectHttpxSyncClient(raise_on_all_errors=False)


SOON_SECONDS = 30  # the scheduled deployment first fires this long after serve starts (it registers in 10-15 s)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """A real `prefect server start` serving the project's deployments plus `retraining/adult-soon`: the nightly
    retraining with a schedule that first fires SOON_SECONDS from now, and this test's data in its schedule's
    parameters (per-schedule parameters, as prefect.yaml declares them)."""
    tmp = tmp_path_factory.mktemp("server")
    days = simulate(tmp / "all", days=7, rows=1500, seed=5)
    inbox = tmp / "batches"
    inbox.mkdir()
    days[0].rename(inbox / days[0].name)
    registry_url = f"sqlite:///{tmp / 'registry.db'}"
    history = tmp / "history.parquet"  # 6,000 of Adult's rows: the retraining history, small for CI time
    pd.read_parquet(ROOT / "data" / "sample" / "adult.parquet").sample(6000, random_state=1).to_parquet(history)
    settings = {"batches": str(inbox), "training": {
        "ingest": {"source": str(history)}, "preset": "fast",
        "artifacts_root": str(tmp / "artifacts"), "registry": {"registry_url": registry_url},
        "evaluate": {"cv_folds": 0, "permutation_repeats": 0}, "tune": {"enabled": False}}}
    with prefect_server("sqlite", tmp) as (url, env):
        nightly = next(d for d in load_declarations() if d["name"] == "adult-nightly")
        first_fire = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=SOON_SECONDS)
        soon = {**nightly, "name": "adult-soon", "schedules": [
            {"interval": 86400, "anchor_date": first_fire.isoformat(), "parameters": {"settings": settings}}]}
        file = tmp / "deployments.yaml"
        file.write_text(yaml.safe_dump({"deployments": [*load_declarations(), soon]}))
        served = subprocess.Popen([sys.executable, "-m", "cli.main", "deployments", "--file", str(file)], cwd=ROOT,
                                  stdout=open(tmp / "serve.log", "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True, env={**env, "PREFECT_HOME": str(tmp / "serve-home")})
        try:
            yield {"api": url, "tmp": tmp, "days": days, "inbox": inbox, "settings": settings,
                   "registry_url": registry_url, "first_fire": first_fire, "server_log": tmp / "server.log"}
        finally:
            stop([served])


def _deployments(api: str, expected: int, attempts: int = 120) -> dict[str, dict]:
    """The served deployments by "flow/deployment" name, once at least ``expected`` are registered."""
    for _ in range(attempts):
        found = _http().post(f"{api}/deployments/filter", json={"limit": 50}, timeout=10).json()
        if len(found) >= expected:
            flows = {f["id"]: f["name"] for f in _http().post(f"{api}/flows/filter", json={}, timeout=10).json()}
            return {f"{flows[d['flow_id']]}/{d['name']}": d for d in found}
        time.sleep(1)
    raise AssertionError(f"only {len(found)} deployments registered after {attempts} tries")


def _runs_of(api: str, deployment: dict, types: list[str]) -> list[dict]:
    """The deployment's flow runs in one of these state types, soonest first."""
    body = {"deployments": {"id": {"any_": [deployment["id"]]}}, "sort": "EXPECTED_START_TIME_ASC",
            "flow_runs": {"state": {"type": {"any_": types}}}}
    return _http().post(f"{api}/flow_runs/filter", json=body, timeout=10).json()


def _scheduler_errors(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "ERROR" in line or "Traceback" in line]


def _run_and_wait(api: str, name: str, parameters: dict, timeout: float = 420) -> dict:
    """Create a flow run of a deployment through the API, as the UI's Run button does, and wait for its end."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}):
        run = run_deployment(name, parameters=parameters, timeout=timeout)
    return _http().get(f"{api}/flow_runs/{run.id}", timeout=10).json()


def test_api_accepts_the_nulls_the_ui_sends(world: dict) -> None:
    # the UI posts filters with explicit nulls; fastapi 0.151+ made the server reject them (pyproject caps it)
    body = {"offset": None, "limit": None, "sort": None, "flows": None, "deployments": None}
    assert _http().post(f"{world['api']}/deployments/filter", json=body, timeout=10).status_code == 200


def test_the_nightly_deployment_has_upcoming_runs_within_a_minute(world: dict) -> None:
    deps = _deployments(world["api"], 5)
    assert set(deps) == {"training/adult", "inference/adult", "monitoring/adult", "retraining/adult-nightly",
                         "retraining/adult-soon"}
    nightly = deps["retraining/adult-nightly"]
    (schedule,) = nightly["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["schedule"]["timezone"] == "Europe/Berlin"
    assert "settings" in nightly["parameter_openapi_schema"]["properties"]  # the UI's parameter form
    assert nightly["parameters"]["settings"]["batches"] == "data/batches"
    upcoming: list[dict] = []
    for _ in range(60):  # the UI's Upcoming tab: runs the scheduler service created
        upcoming = _runs_of(world["api"], nightly, types=["SCHEDULED"])
        if upcoming:
            break
        time.sleep(1)
    assert upcoming, f"no scheduled run after 60 s; scheduler errors: {_scheduler_errors(world['server_log'])[:3]}"
    first = dt.datetime.fromisoformat(upcoming[0]["expected_start_time"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert (first.hour, first.minute) == (2, 0) and "auto-scheduled" in upcoming[0]["tags"]


def _submit_untouched(api: str, deployment: dict, chosen: dict) -> dict:
    """The parameters the server stored for a run created from the deployment's form (the schema the server
    holds) with only ``chosen`` set, as the UI's Custom run submits it (toggles included); the run is deleted."""
    schema = deployment["parameter_openapi_schema"]
    assert deployment["enforce_parameter_schema"]  # the server checks what a form sends against this schema
    values = form_values(schema, schema.get("definitions", {}), chosen)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).isoformat()  # created, never run
    made = _http().post(f"{api}/deployments/{deployment['id']}/create_flow_run", timeout=10, json={
        "parameters": values, "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": later}}})
    assert made.status_code == 201, made.text
    _http().delete(f"{api}/flow_runs/{made.json()['id']}", timeout=10)
    return made.json()["parameters"]["settings"]


def test_the_server_takes_the_form_submitted_unchanged(world: dict) -> None:
    """For each preset and bundled dataset an untouched form trains as the command line does, and the other
    deployments' forms mean what their command lines mean."""
    api = world["api"]
    deployments = _deployments(api, 5)
    for preset in ("fast", "default", "best"):
        for dataset in known_datasets():
            sent = TrainingSettings.model_validate(_submit_untouched(
                api, deployments["training/adult"], {"settings": {"dataset": dataset, "preset": preset}}))
            cli = parse_settings(TrainingSettings, ["--dataset", dataset, "--preset", preset], "trainflow train")
            schema = load_schema(dataset)
            assert effective_settings(with_preset(sent, schema), schema) == \
                effective_settings(with_preset(cli, schema), schema), (preset, dataset)
    for name, cls, argv in (("inference/adult", InferenceSettings, ["--source", "data/sample/adult.parquet"]),
                            ("monitoring/adult", MonitoringSettings, ["--source", "data/sample/adult.parquet"]),
                            ("retraining/adult-nightly", RetrainingSettings,
                             ["--batches", "data/batches", "--window-batches", "7", "--max-model-age-days", "7"])):
        deployment = deployments[name]
        sent = cls.model_validate(_submit_untouched(api, deployment, deployment["parameters"]))
        assert sent.model_dump() == parse_settings(cls, argv, "trainflow").model_dump(), name


def test_the_scheduler_fires_retraining_then_the_run_button_retrains_on_drift(world: dict) -> None:
    api = world["api"]
    soon = _deployments(api, 5)["retraining/adult-soon"]
    assert dt.datetime.fromisoformat(soon["created"]) < world["first_fire"], "served after its first run time"
    deadline = world["first_fire"] + dt.timedelta(seconds=480)
    runs: list[dict] = []
    while dt.datetime.now(dt.UTC) < deadline:  # nothing here starts a run: the scheduler and the served process do
        runs = _runs_of(api, soon, types=["COMPLETED", "FAILED", "CRASHED", "CANCELLED"])
        if runs:
            break
        time.sleep(2)
    assert runs, f"the scheduled run did not finish; scheduler errors: {_scheduler_errors(world['server_log'])[:3]}"
    (fired,) = runs
    assert fired["state_type"] == "COMPLETED", fired["state"]
    assert "auto-scheduled" in fired["tags"] and fired["parameters"]["settings"]["batches"] == str(world["inbox"])
    assert "adult" in fired["tags"]  # the dataset the run really used (the deployment itself has no dataset tag)
    assert dt.datetime.fromisoformat(fired["expected_start_time"]) == world["first_fire"]
    assert _scheduler_errors(world["server_log"]) == []
    registry = Registry(world["registry_url"])
    assert registry.tables()["model_versions"]["version"].tolist() == [1]  # no model yet: the first is trained

    for day in world["days"][1:]:
        day.rename(world["inbox"] / day.name)
    second = _run_and_wait(api, "retraining/adult-nightly", {"settings": world["settings"]})
    assert second["state_type"] == "COMPLETED", second["state"]
    versions = registry.tables()["model_versions"]
    assert versions["version"].tolist() == [1, 2]  # trained, then retrained on the drifted week
    events = registry.tables()["registry_events"]
    assert {"promotion_declined", "alias_set"} & set(events[events["version"] == 2]["event"])
    reports = list((world["tmp"] / "artifacts" / "runs").glob("*/drift/drift_report.parquet"))
    assert len(reports) == 1 and pd.read_parquet(reports[0])["drifted"].any()
    arts = _http().post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": ["drift-adult"]}},
                                                       "limit": 5, "offset": 0, "sort": "CREATED_DESC"},
                      timeout=10).json()
    assert arts and arts[0]["flow_run_id"] == second["id"] and arts[0]["task_run_id"] is None  # on the run's page
    assert _scheduler_errors(world["server_log"]) == []
