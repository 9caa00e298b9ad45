"""Re-take the README's screenshots of the Prefect UI with headless Chromium (Debian's `chromium`).

Starts a Prefect server on a free 127.0.0.1 port with a temporary PREFECT_HOME, serves the deployments,
runs the retraining deployment on a simulated drifting week (two runs: train, then monitor and retrain),
and saves `docs/ui-deployments.png`, `docs/ui-retraining-run.png`, `docs/ui-tuning.png` (the tuning
artifact of the training subflow, its plot inline), `docs/ui-logs.png` (the Logs tab of that training run:
the project's line per stage and per trial) and `docs/ui-upcoming.png` (the nightly deployment's Upcoming
tab: the runs its schedule created).

    apt-get install chromium        # once
    trainflow screenshot
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from deployments.simulate import simulate
from deployments.ui import free_port, wait_healthy
from trainflow.schema import PROJECT_ROOT

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1500,950", "--virtual-time-budget=15000"]


def _run_deployment(api: str, name: str, parameters: dict, timeout: float = 600) -> str:
    """Run a deployment through the API (as the UI's Run button does), wait for it, return the run's id."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}):
        return str(run_deployment(name, parameters=parameters, timeout=timeout).id)


def shoot(chromium: str, url: str, out: Path, profile: Path) -> None:
    """Save a screenshot of a page."""
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=120)


def take_screenshots(out: Path = PROJECT_ROOT / "docs") -> None:
    """The screenshots, as PNG files in ``out`` (``trainflow screenshot``)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("error: chromium not found; install Debian's package: apt-get install chromium")
    tmp = Path(tempfile.mkdtemp(prefix="tf-shots-"))
    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    api = f"{ui}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    # the UI calls the API address in its settings (port 4200 by default), not the --port given to the server
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_HOME=str(tmp / "home"), PREFECT_UI_API_URL=api)
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    served = None
    try:
        wait_healthy(api, timeout=180)
        served = subprocess.Popen([sys.executable, "-m", "cli.main", "deployments"], env={**env, "PREFECT_API_URL": api},
                                  cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(120):
            if len(httpx.post(f"{api}/deployments/filter", json={"limit": 50}, timeout=10).json()) >= 4:
                break
            time.sleep(1)
        days = simulate(tmp / "all", days=7, rows=2000)
        inbox = tmp / "batches"
        inbox.mkdir()
        days[0].rename(inbox / days[0].name)
        settings = {"batches": str(inbox), "training": {"artifacts_root": str(tmp / "artifacts"),
                                                        "registry": {"registry_url": f"sqlite:///{tmp / 'r.db'}"}}}
        _run_deployment(api, "retraining/adult-nightly", {"settings": settings})
        for day in days[1:]:
            day.rename(inbox / day.name)
        run_id = _run_deployment(api, "retraining/adult-nightly", {"settings": settings})
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        shoot(chromium, f"{ui}/deployments", out / "ui-deployments.png", tmp / "chrome")
        shoot(chromium, f"{ui}/runs/flow-run/{run_id}", out / "ui-retraining-run.png", tmp / "chrome")
        # the training subflow tuned (on by default): its markdown artifact shows the best-score plot
        plots = [a for a in httpx.post(f"{api}/artifacts/filter", json={"sort": "CREATED_DESC"}, timeout=10).json()
                 if (a.get("key") or "").startswith("tuning-plot-")]
        shoot(chromium, f"{ui}/artifacts/artifact/{plots[0]['id']}", out / "ui-tuning.png", tmp / "chrome")
        training_run = plots[0]["flow_run_id"]  # the training subflow of the second retraining run
        shoot(chromium, f"{ui}/runs/flow-run/{training_run}?tab=Logs", out / "ui-logs.png", tmp / "chrome")
        deployments = httpx.post(f"{api}/deployments/filter", json={"limit": 50}, timeout=10).json()
        nightly = next(d for d in deployments if d["name"] == "adult-nightly")
        shoot(chromium, f"{ui}/deployments/deployment/{nightly['id']}?tab=Upcoming", out / "ui-upcoming.png",
              tmp / "chrome")
        print("wrote", ", ".join(str(out / f"ui-{n}.png") for n in ("deployments", "retraining-run", "tuning", "logs",
                                                                     "upcoming")))
    finally:
        for proc in (served, server):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
