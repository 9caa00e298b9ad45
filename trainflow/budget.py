"""The time a run may spend: one limit for tune + train (+ evaluate's cross-validation refit), shared out before
each stage starts, as AutoGluon's ``time_limit`` is.

- ``default_time_limit``: the preset's limit when the settings leave it empty, scaled to the table's cells;
- ``Budget``: the limit's clock from the moment tuning would start; each stage gets a deadline from it;
- ``FitClock``: what one fit checks after every boosting round or epoch: a heartbeat line when it has been
  quiet for ``HEARTBEAT_SECONDS``, and whether its deadline has passed (the fit then stops and keeps its best
  round or epoch so far, as early stopping would).

The shares: tuning gets ``TUNE_SHARE`` of the limit (less when its own budget is smaller); train gets what is
left, less ``EVALUATE_SHARE`` when evaluate must refit its cross-validation (train compared the families on
the validation split), ``IMPORTANCE_SHARE`` for its permutation importances and ``COMPRESS_SHARE`` for compress
(an ONNX export that would not fit in the time left is skipped); evaluate and compress get the rest. Within train
each family's share is the time left weighted by
its ``Family.cost`` against the families still to train, so what one family leaves unused goes to the next.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from trainflow.progress import run_logger

TUNE_SHARE = 0.3
EVALUATE_SHARE = 0.25
IMPORTANCE_SHARE = 0.1  # evaluate's permutation importances
# compress: its ONNX export and timing rounds (quality benchmark at 60 s: 3 to 24 s after train, the most for a
# 54k-row table's random forest, whose export costs about 9 µs per tree node)
COMPRESS_SHARE = 0.15
HEARTBEAT_SECONDS = 20.0  # a fit longer than this logs where it is (the Logs tab is never silent for ~30 s)
# seconds of limit per table cell (rows x feature columns) at the default preset, and its floor and ceiling
SECONDS_PER_CELL = 1 / 10_000
# the floor: Adult's default run (27,676 rows x 13 columns) needs about 52 s of tune + train on an idle 2-core
# machine; at 60 s every boosted family was cut and its test ROC-AUC fell from 0.9351 to 0.9346
MIN_LIMIT, MAX_LIMIT = 90.0, 4 * 3600.0
PRESET_SCALE = {"fast": 0.2, "default": 1.0, "best": 4.0}
# a network family trains for minutes on a CPU where the tabular families take seconds (the digits CNN's default
# run: 313 s, fine_food's transformer 172 s, air_passengers' GRU 35 s; README.md)
NETWORK_SCALE = 6.0


def default_time_limit(preset: str, rows: int, columns: int, networks: bool = False) -> float:
    """The preset's time limit in seconds for a table of ``rows`` x ``columns`` (training and validation rows,
    feature columns): the default preset 90 s, or 1 s per 10,000 cells beyond that, at most 4 hours;
    ``NETWORK_SCALE`` times that when a network family trains; ``fast`` a fifth of it, ``best`` four times."""
    base = min(MAX_LIMIT, max(MIN_LIMIT, rows * max(columns, 1) * SECONDS_PER_CELL))
    return round(base * (NETWORK_SCALE if networks else 1.0) * PRESET_SCALE[preset], 1)


@dataclass
class Budget:
    """A run's time limit, counted from ``started`` (``time.time()``); ``limit`` None: no limit."""

    limit: float | None
    started: float = field(default_factory=time.time)
    artifact_id: object = field(default=None, repr=False)  # the run's budget progress artifact, once opened

    @property
    def deadline(self) -> float | None:
        return None if self.limit is None else self.started + self.limit

    def left(self) -> float:
        """Seconds left (infinite without a limit; never below 0)."""
        return math.inf if self.limit is None else max(0.0, self.started + self.limit - time.time())

    def spent(self) -> float:
        return time.time() - self.started

    def share(self, fraction: float, at_most: float | None = None) -> float | None:
        """A deadline ``fraction`` of the time left from now (at most ``at_most`` seconds away); None without a
        limit and without ``at_most``."""
        seconds = self.left() * fraction
        if at_most is not None:
            seconds = min(seconds, at_most)
        return None if math.isinf(seconds) else time.time() + seconds

    def report(self, stage: str) -> None:
        """A log line and the budget's progress artifact (created on the first report in a flow run) after
        ``stage``: time spent and left."""
        from prefect.context import FlowRunContext, TaskRunContext

        run_logger().info("budget: after %s: %s", stage, self.line())
        if not (FlowRunContext.get() or TaskRunContext.get()):
            return
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        done = 100.0 if self.limit is None else min(100.0, 100.0 * self.spent() / max(self.limit, 1e-9))
        description = f"time budget after {stage}: {self.line()}"
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(progress=done, key="time-budget", description=description)
        else:
            update_progress_artifact(self.artifact_id, progress=done, description=description)

    def line(self) -> str:
        """``spent 12.3 s of 60 s, 47.7 s left`` for a log line."""
        if self.limit is None:
            return f"spent {self.spent():.1f} s (no time limit)"
        return f"spent {self.spent():.1f} s of {self.limit:.0f} s, {self.left():.1f} s left"


def weighted_deadline(deadline: float | None, cost: float, costs_left: float) -> float | None:
    """A family's deadline: the time left before ``deadline`` times its share of the costs still to pay."""
    if deadline is None:
        return None
    left = max(0.0, deadline - time.time())
    return time.time() + left * cost / max(costs_left, 1e-9)


class FitClock:
    """Checked by a fit after every round or epoch: logs ``label: round N...`` when the fit has been quiet for
    ``HEARTBEAT_SECONDS`` and says whether ``deadline`` has passed. ``stopped_at`` is the step at which it
    first said so."""

    def __init__(self, deadline: float | None, label: str):
        self.deadline, self.label = deadline, label
        self.started = self.last = time.time()
        self.stopped_at: int | None = None

    def due(self) -> bool:
        """Whether the deadline has passed (asked inside a step that may be long: a network's epoch)."""
        return self.deadline is not None and time.time() >= self.deadline

    def tick(self, step: int, unit: str = "round") -> bool:
        """True when the fit must stop now (its deadline has passed)."""
        now = time.time()
        if now - self.last >= HEARTBEAT_SECONDS:
            self.last = now
            run_logger().info("%s: %s %d, %.0f s so far", self.label, unit, step, now - self.started)
        if self.deadline is not None and now >= self.deadline:
            if self.stopped_at is None:
                self.stopped_at = step
            return True
        return False
