"""``torchrun --standalone --nproc_per_node N -m cli.distributed --dataset digits --family cnn``: data-parallel
training of a network family with DistributedDataParallel (``flows.distributed``). Backend: NCCL on CUDA, gloo
on CPU; process 0 prints the summary as JSON."""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, CliApp, PydanticBaseSettingsSource, SettingsConfigDict


class Distributed(BaseSettings):
    """Data-parallel training of a network family, one process per torchrun worker."""

    model_config = SettingsConfigDict(cli_prog_name="torchrun --standalone --nproc_per_node N -m cli.distributed",
                                      cli_kebab_case=True, cli_exit_on_error=True)
    dataset: str = Field("digits", description="dataset schema name")
    family: str = Field("cnn", description="network family: mlp, cnn, transformer or gru")
    seed: int = Field(42, description="random seed")
    artifacts_root: str | None = Field(None, description="where the run is written; empty: the project's data/")
    nn: dict[str, Any] = Field({}, description='network settings as JSON, e.g. {"max_epochs": 10}')

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   *args: Any, **kwargs: Any) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the command line alone: no surprise from environment variables


def main(argv: list[str] | None = None) -> int:
    from flows.distributed import run
    from trainflow import PROJECT_ROOT

    args = CliApp.run(Distributed, cli_args=argv)
    launched = "WORLD_SIZE" in os.environ
    if launched:
        import torch
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
    try:
        summary = run(args.dataset, args.family, args.seed, args.artifacts_root or str(PROJECT_ROOT / "data"),
                      args.nn)
    finally:
        if launched:
            dist.destroy_process_group()
    if summary.get("run_dir"):
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
