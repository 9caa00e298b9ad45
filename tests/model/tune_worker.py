"""One tuning worker (``run_trials``) in its own process; the crash test kills it mid-trial.

    python tests/model/tune_worker.py '{"root": ..., "refs": ..., "train": ..., "tune": ..., "plan": ..., "seed": 0}'
"""

import json
import sys

from trainflow.catalog import ArtifactRef
from trainflow.schema import load_schema
from trainflow.models.settings import TrainSettings
from trainflow.features import TransformSettings
from tasks.tune import TuneSettings, run_trials


def main(args: dict) -> None:
    refs = {k: ArtifactRef(**v) for k, v in args["refs"].items()}
    run_trials(args["root"], load_schema("breast_cancer"), refs, TransformSettings(), TrainSettings(**args["train"]),
               TuneSettings(**args["tune"]), args["plan"], args["seed"])


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
