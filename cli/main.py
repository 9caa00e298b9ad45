"""``trainflow``: the project's one command, with a subcommand per way of running it.

    trainflow train --dataset adult              # the training flow
    trainflow stage --stage evaluate --from-run RUN_ID
    trainflow infer --source rows.parquet [--model.version 3]
    trainflow monitor --source new-batch.parquet
    trainflow retrain --batches data/batches
    trainflow schema infer --name shop --source shop.csv --label churned
    trainflow registry list adult                # also: promote adult 3, rollback adult
    trainflow runs gc --keep 20                  # delete all but the 20 newest run folders
    trainflow ui                                 # Prefect server and UI, every deployment served
    trainflow serve adult                        # online scoring: POST /predict, GET /health, GET /model

Every command is parsed by pydantic-settings' CLI (chosen because the flows' settings already are pydantic
models: their fields, defaults and descriptions are the flags and the help, with nothing to keep in step), and
``trainflow COMMAND --help`` lists each command's flags. A flow's flags are its settings model's fields
(``cli.config``); the flow runs through ``cli.run``; what it prints is in ``cli.printers``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import (BaseSettings, CliApp, CliSubCommand, CliUnknownArgs, PydanticBaseSettingsSource,
                               SettingsConfigDict, SettingsError)

from cli.tools import Deployments, RegistryCommand, Runs, Schema, Screenshot, Serve, Simulate, Ui

# command: (flow module, flow function, settings class, printer in cli.printers, what it does)
FLOWS = {
    "train": ("flows.training", "training", "TrainingSettings", "print_summary",
              "train a model: ingest, validate, split, transform, tune, train, evaluate, register"),
    "stage": ("flows.stage", "run_stage", "StageSettings", "print_stage",
              "run one stage against an earlier run's artifacts"),
    "infer": ("flows.inference", "inference", "InferenceSettings", "print_inference",
              "score a batch of rows with a registered model"),
    "monitor": ("flows.monitoring", "monitoring", "MonitoringSettings", "print_monitoring",
                "compare a batch of rows with the production model's training profile"),
    "retrain": ("flows.retraining", "retraining", "RetrainingSettings", "print_retraining",
                "check drift, retrain, promote the challenger only if it wins"),
}


class FlowCommand(BaseModel):
    """A flow: its flags are its settings (``trainflow COMMAND --help``)."""

    flags: CliUnknownArgs


def _flow_field(command: str) -> Any:
    return Field(description=FLOWS[command][4])


class Trainflow(BaseSettings):
    """The project's one command: a subcommand per way of running it (trainflow COMMAND --help: its flags)."""

    model_config = SettingsConfigDict(cli_prog_name="trainflow", cli_kebab_case=True, cli_implicit_flags=True,
                                      cli_exit_on_error=False)
    train: CliSubCommand[FlowCommand] = _flow_field("train")
    stage: CliSubCommand[FlowCommand] = _flow_field("stage")
    infer: CliSubCommand[FlowCommand] = _flow_field("infer")
    monitor: CliSubCommand[FlowCommand] = _flow_field("monitor")
    retrain: CliSubCommand[FlowCommand] = _flow_field("retrain")
    schema_: CliSubCommand[Schema] = Field(alias="schema", description="schema infer: a starter schema and GX "
                                                                       "suite for a new dataset")
    registry: CliSubCommand[RegistryCommand] = Field(description="registry list|promote|rollback: look at and move "
                                                                 "the production alias")
    runs: CliSubCommand[Runs] = Field(description="runs list|gc --keep N: the run folders, and deleting all but "
                                                  "the newest")
    ui: CliSubCommand[Ui] = Field(description="start the Prefect server and UI on 127.0.0.1 and serve every "
                                              "deployment")
    serve: CliSubCommand[Serve] = Field(description="score rows over HTTP with a registered model (POST /predict)")
    deployments: CliSubCommand[Deployments] = Field(description="serve the deployments of a prefect.yaml for a "
                                                                "running Prefect server")
    simulate: CliSubCommand[Simulate] = Field(description="write a week of drifting daily Adult batches")
    screenshot: CliSubCommand[Screenshot] = Field(description="take the documentation's screenshots of the UI")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   *args: Any, **kwargs: Any) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the command line alone: no surprise from environment variables

    def cli_cmd(self) -> None:
        CliApp.run_subcommand(self)


def prefect_defaults() -> None:
    """The Prefect servers these commands start (a flow's temporary one, ``trainflow ui``'s) send no telemetry
    heartbeat unless ``PREFECT_SERVER_ANALYTICS_ENABLED`` says otherwise, as under ``make``: offline, Prefect
    logs each failed heartbeat as an ERROR line among the run's own. Set before Prefect is imported."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def run_command(command: str, argv: list[str] | None) -> int:
    """Run the flow of ``trainflow COMMAND``; ``argv`` None: a command reading ``sys.argv`` (Ctrl-C watched)."""
    from cli import printers
    from cli.run import run_flow

    module_name, flow_name, settings_name, printer, _ = FLOWS[command]
    module = importlib.import_module(module_name)
    return run_flow(getattr(module, flow_name), getattr(module, settings_name), argv=argv,
                    prog=f"trainflow {command}", printer=getattr(printers, printer))


def main(argv: list[str] | None = None) -> int:
    """Run ``trainflow COMMAND [FLAGS]``; returns the command's exit code (2 for a user error)."""
    from trainflow.errors import TrainflowError, clipped, printable

    prefect_defaults()
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in FLOWS:  # a flow parses its own settings (and reads sys.argv as a command)
        if argv is None:
            sys.argv = [f"trainflow {args[0]}", *args[1:]]
        return run_command(args[0], None if argv is None else args[1:])
    try:
        CliApp.run(Trainflow, cli_args=args)
    except SettingsError as exc:
        message = str(exc).removeprefix("error parsing CLI: ")
        print(f"error: {clipped(message)} (trainflow --help lists the commands)", file=sys.stderr)
        return 2
    except TrainflowError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the flows end theirs themselves (cli.run.watch_interrupts)
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
