"""Progress for long stages: a Prefect progress artifact inside a run, a console bar in a terminal, and the
run's log lines (the UI's Logs tab and the console)."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from collections.abc import Iterator

from prefect.context import TaskRunContext, FlowRunContext


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow or task run (the UI's Logs tab and the console), else ``trainflow``'s."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("trainflow")


class Progress:
    """Counts steps of a stage and reports them where someone can see them: a progress artifact, a console bar
    in a terminal, and a log line per step (the UI's Logs tab)."""

    def __init__(self, total: int, description: str):
        self.total, self.done, self.description = max(total, 1), 0, description
        self._log = run_logger()
        self._artifact_id = None
        self._bar = None
        if TaskRunContext.get() or FlowRunContext.get():
            from prefect.artifacts import create_progress_artifact

            self._artifact_id = create_progress_artifact(progress=0.0, description=description)
        if sys.stderr.isatty():
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(transient=True)
            self._bar.start()
            self._task = self._bar.add_task(description, total=self.total)

    def advance(self, label: str = "") -> None:
        """Mark one more step done."""
        self.done += 1
        self._log.info("%s: %d/%d %s", self.description, self.done, self.total, label)
        if self._artifact_id is not None:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self._artifact_id, progress=100.0 * self.done / self.total,
                                     description=f"{self.description}: {label}" if label else None)
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=f"{self.description} {label}".strip())

    def finish(self, label: str = "done") -> None:
        """Mark the whole stage done (early stopping ends a loop before its last step), replacing the last
        step's label, which would otherwise stay on the finished bar."""
        if self._artifact_id is not None:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self._artifact_id, progress=100.0, description=f"{self.description}: {label}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@contextmanager
def progress(total: int, description: str) -> Iterator[Progress]:
    """``with progress(n, "training") as p: ... p.advance("lightgbm")``."""
    p = Progress(total, description)
    try:
        yield p
        p.finish()
    finally:
        p.close()
