"""Serve every deployment declared in ``deployments/prefect.yaml`` to the Prefect API in PREFECT_API_URL.

    python -m deployments.serve            # with `prefect server start` running (or use `make ui`)

The UI then lists the deployments with their schedules and parameter forms, and its Run button starts
a flow run here. Stop with Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path
from typing import Any

import yaml

from tasks.schema import PROJECT_ROOT

DEPLOYMENTS_FILE = Path(__file__).with_name("prefect.yaml")


def load_declarations(path: Path = DEPLOYMENTS_FILE) -> list[dict[str, Any]]:
    """The deployments declared in a prefect.yaml."""
    return yaml.safe_load(path.read_text())["deployments"]


def build_deployments(declarations: list[dict[str, Any]]) -> list:
    """``RunnerDeployment`` objects for the declarations (nothing is sent to the API here)."""
    from prefect.schedules import Cron

    out = []
    for d in declarations:
        file, func = d["entrypoint"].split(":")
        module = importlib.import_module(file.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        schedules = [Cron(s["cron"], timezone=s.get("timezone")) for s in d.get("schedules") or []]
        out.append(flow.to_deployment(name=d["name"], description=d.get("description"), tags=d.get("tags"),
                                      parameters=d.get("parameters"), schedules=schedules or None,
                                      concurrency_limit=d.get("concurrency_limit")))
    return out


def main() -> None:
    argparse.ArgumentParser(prog="python -m deployments.serve", description=__doc__.splitlines()[0]).parse_args()
    os.chdir(PROJECT_ROOT)  # parameters hold paths relative to the project root
    from prefect import serve

    serve(*build_deployments(load_declarations()))


if __name__ == "__main__":
    main()
