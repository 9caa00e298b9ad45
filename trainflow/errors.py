"""Errors a user can cause: each says what was expected, what was found, and where."""

from __future__ import annotations

import re

MAX_DETAIL = 300  # characters of one value, sample or driver message inside an error line


# what would break a line or steer a terminal: control characters and the separators str.splitlines breaks at
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` as one line a terminal shows as is: a line break becomes a space, any other control character or
    line separator its escape (``\\x1b``), so that an untrusted name can neither break nor colour the line."""
    return _UNPRINTABLE.sub(lambda m: " " if m.group() in "\n\r" else m.group().encode("unicode_escape").decode(),
                            text)


def clipped(text: str, limit: int = MAX_DETAIL) -> str:
    """``text`` on one line and at most ``limit`` characters (a 20 MB cell must not become a 20 MB line)."""
    text = str(text)
    return printable(text) if len(text) <= limit else printable(text[:limit]) + f"… ({len(text):,} characters)"


class TrainflowError(Exception):
    """Base class for errors that end a run with one clear line instead of a traceback."""

    def __reduce__(self) -> tuple:
        # pickled as its line and attributes: raised on a Dask worker, it arrives the same (the subclasses'
        # own arguments would not rebuild it)
        return _restore, (type(self), str(self), self.__dict__)


def _restore(cls: type[TrainflowError], text: str, state: dict) -> TrainflowError:
    error = cls.__new__(cls)
    Exception.__init__(error, text)
    error.__dict__.update(state)
    return error


class DataError(TrainflowError):
    """Input data broke a rule.

    Args:
        dataset: Dataset name from ``schemas/``.
        message: What was expected and what was found.
        column: The column concerned, when there is one.
        rule: The rule that was broken (an expectation type or a short name).
    """

    def __init__(self, dataset: str, message: str, column: str | None = None, rule: str | None = None):
        self.dataset, self.column, self.rule = dataset, column, rule
        where = f"dataset '{clipped(dataset, 80)}'" + (f", column '{clipped(column, 80)}'" if column else "")
        super().__init__(f"{where}: {clipped(message, 3 * MAX_DETAIL)}" + (f" [rule: {rule}]" if rule else ""))


class ValidationFailed(DataError):
    """One or more error-severity expectations failed; ``failures`` lists (column, rule, detail)."""

    def __init__(self, dataset: str, failures: list[tuple[str | None, str, str]], report_path: str):
        self.failures = failures
        self.report_path = report_path
        parts = clipped("; ".join(f"{clipped(col or '<table>', 80)}: {rule} ({clipped(detail, 120)})"
                                  for col, rule, detail in failures), 500)  # the report path stays whole
        super().__init__(
            dataset,
            f"{len(failures)} error-severity expectation(s) failed: {parts}. Report: {report_path}",
            column=failures[0][0] if failures else None,
            rule=failures[0][1] if failures else None,
        )


class QualityGateFailed(TrainflowError):
    """The model scored below the absolute quality gate; it was not registered."""


class ArtifactError(TrainflowError):
    """An artifact is missing, already exists, or does not match its recorded hash."""


class RegistryError(TrainflowError):
    """The registry has no such model, version or alias."""


def is_transient(task: object, task_run: object, state: object) -> bool:
    """Prefect ``retry_condition_fn``: retry I/O hiccups, never an error the input itself causes."""
    return not isinstance(getattr(state, "data", None), TrainflowError)
