"""``trainflow``: the project's one command, with a subcommand per way of running it.

    trainflow train --dataset adult              # the training flow (python -m flows.training)
    trainflow stage --stage evaluate --from-run RUN_ID
    trainflow infer --source rows.parquet [--model.version 3]
    trainflow monitor --source new-batch.parquet
    trainflow retrain --batches data/batches
    trainflow schema infer --name shop --source shop.csv --label churned
    trainflow registry list adult                # also: promote adult 3, rollback adult
    trainflow runs gc --keep 20                  # delete all but the 20 newest run folders
    trainflow ui                                 # Prefect server and UI, every deployment served

It lives beside the deployments because it reaches every layer: the flows, the library's schema and
registry commands, and the UI with its served deployments. ``trainflow COMMAND --help`` lists each
command's flags; every ``python -m flows.NAME`` form keeps working.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable

# command: (module, function, what it does); flows take sys.argv, the others an argv list and a prog name
FLOWS = {
    "train": ("flows.training", "train a model: ingest, validate, split, transform, tune, train, evaluate, register"),
    "stage": ("flows.stage", "run one stage against an earlier run's artifacts"),
    "infer": ("flows.inference", "score a batch of rows with a registered model"),
    "monitor": ("flows.monitoring", "compare a batch of rows with the production model's training profile"),
    "retrain": ("flows.retraining", "check drift, retrain, promote the challenger only if it wins"),
}
TOOLS = {
    "schema": ("trainflow.schema", "schema infer: write a starter schema and GX suite for a new dataset"),
    "registry": ("trainflow.registry", "registry list|promote|rollback: look at and move the production alias"),
    "runs": ("trainflow.catalog", "runs list|gc --keep N: the run folders, and deleting all but the newest"),
    "ui": ("deployments.ui", "start the Prefect server and UI on 127.0.0.1 and serve every deployment"),
}


def prefect_defaults() -> None:
    """The Prefect servers these commands start (a flow's temporary one, ``trainflow ui``'s) send no telemetry
    heartbeat unless ``PREFECT_SERVER_ANALYTICS_ENABLED`` says otherwise, as under ``make``: offline, Prefect
    logs each failed heartbeat as an ERROR line among the run's own. Set before Prefect is imported."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def main(argv: list[str] | None = None) -> int:
    """Run ``trainflow COMMAND [FLAGS]``; returns the command's exit code (2 for a user error)."""
    argv = sys.argv[1:] if argv is None else argv
    prefect_defaults()
    commands = {**FLOWS, **TOOLS}
    parser = argparse.ArgumentParser(
        prog="trainflow", usage="trainflow COMMAND [FLAGS...]   (trainflow COMMAND --help: its flags)",
        description="The project's one command: a subcommand per way of running it.",
        epilog="commands:\n" + "\n".join(f"  {name:<9} {help_}" for name, (_, help_) in commands.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=commands, metavar="COMMAND", help="one of: " + ", ".join(commands))
    parsed = parser.parse_args(argv[:1])
    rest, prog = argv[1:], f"trainflow {parsed.command}"
    if parsed.command in FLOWS:
        module = importlib.import_module(FLOWS[parsed.command][0])
        sys.argv = [prog, *rest]  # the flow's command line reads sys.argv, as under python -m
        return module.cli(prog=prog)
    run: Callable[..., int | None] = importlib.import_module(TOOLS[parsed.command][0]).main
    try:
        return run(rest, prog=prog) or 0
    except KeyboardInterrupt:  # the flows end theirs themselves (flows.cli.watch_interrupts)
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
