"""Serve every deployment declared in ``deployments/prefect.yaml`` to the Prefect API in PREFECT_API_URL.

    trainflow deployments                  # with `prefect server start` running (or use `make ui`)
    trainflow deployments --file my-deployments.yaml

A declaration's ``schedules`` take the fields of ``prefect.schedules.Schedule`` as prefect.yaml writes them:
``cron``, ``interval`` (seconds) or ``rrule``, and ``timezone``, ``anchor_date``, ``active``, ``slug`` and
``parameters`` (per-schedule values that replace the deployment's top-level parameters of the same name).

The UI then lists the deployments with their schedules and parameter forms, and its Run button starts
a flow run here. Stop with Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from pathlib import Path
from typing import Any

import yaml

from trainflow.schema import PROJECT_ROOT

DEPLOYMENTS_FILE = Path(__file__).with_name("prefect.yaml")


def load_declarations(path: Path = DEPLOYMENTS_FILE) -> list[dict[str, Any]]:
    """The deployments declared in a prefect.yaml."""
    return yaml.safe_load(path.read_text())["deployments"]


def build_schedule(spec: dict[str, Any]) -> Any:
    """A ``prefect.schedules.Schedule`` from a prefect.yaml schedule entry (interval in seconds)."""
    from prefect.schedules import Schedule

    fields = dict(spec)
    if fields.get("interval") is not None:
        fields["interval"] = dt.timedelta(seconds=float(fields["interval"]))
    if isinstance(fields.get("anchor_date"), str):
        fields["anchor_date"] = dt.datetime.fromisoformat(fields["anchor_date"])
    return Schedule(**fields)


def build_deployments(declarations: list[dict[str, Any]]) -> list:
    """``RunnerDeployment`` objects for the declarations (nothing is sent to the API here)."""
    out = []
    for d in declarations:
        file, func = d["entrypoint"].split(":")
        module = importlib.import_module(file.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        schedules = [build_schedule(s) for s in d.get("schedules") or []]
        out.append(flow.to_deployment(name=d["name"], description=d.get("description"), tags=d.get("tags"),
                                      parameters=d.get("parameters"), schedules=schedules or None,
                                      concurrency_limit=d.get("concurrency_limit")))
    return out


def serve_file(path: Path = DEPLOYMENTS_FILE) -> None:
    """Serve the deployments of ``path`` from this process until Ctrl-C (``trainflow deployments``)."""
    declarations = load_declarations(Path(path).resolve())
    os.chdir(PROJECT_ROOT)  # parameters hold paths relative to the project root
    from prefect import serve

    serve(*build_deployments(declarations))
