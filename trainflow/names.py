"""Every name that becomes part of a path (dataset, schema, model, run id, stage, artifact, file in a bundle)
is checked here, against one pattern, and every path built from one is checked to stay under its root.

A name is 1 to 128 characters of letters, digits, ``_``, ``.`` and ``-``, starting with a letter or a digit:
so never empty, never ``.`` or ``..``, never a path separator, a NUL byte or an absolute path, and never a
string a command line would read as a flag. ``inside`` resolves symbolic links before comparing, so a
link that points out of the root is caught as well.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from trainflow.errors import TrainflowError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class UnsafeName(TrainflowError):
    """A name that would not stay a single, plain path component, or a path that leaves its root."""


def check_name(value: str, what: str = "name") -> str:
    """``value`` when it is a safe name.

    Raises:
        UnsafeName: Saying which name, the value (quoted, cut short) and the pattern.
    """
    if not isinstance(value, str) or not NAME.fullmatch(value):
        shown = repr(value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "…")
        raise UnsafeName(f"{what} {shown} is not a plain name: 1-128 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit")
    return value


def inside(root: str | Path, *parts: str) -> Path:
    """``root/parts...``, resolved (symbolic links followed), after checking it lies under ``root``.

    Raises:
        UnsafeName: The resolved path leaves the resolved root.
    """
    base = Path(root).resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and base not in path.parents:
        raise UnsafeName(f"{'/'.join(parts)} resolves to {path}, outside {base}")
    return path


def _checked(what: str):  # noqa: ANN202 (a validator function)
    def check(value: str) -> str:
        try:
            return check_name(value, what)
        except UnsafeName as exc:
            raise ValueError(str(exc)) from None  # pydantic reports a ValueError as the field's validation error

    return check


# settings fields whose value becomes a path component: refused in the form and on the command line
ModelName = Annotated[str, AfterValidator(_checked("model name"))]
DatasetName = Annotated[str, AfterValidator(_checked("dataset name"))]
RunId = Annotated[str, AfterValidator(_checked("run id"))]
