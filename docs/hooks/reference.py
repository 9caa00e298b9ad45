"""MkDocs hook: pages that are generated or kept elsewhere, so that the site never holds a second copy.

``<!-- include: PATH -->`` puts a file of the repository in the page (``benchmarks/README.md`` and
``SECURITY.md`` stay where GitHub readers look for them); ``<!-- settings: MODULE:CLASS[:own] -->`` puts a table
of every flag of a flow's settings model, read from its fields, so the reference cannot drift from the code.
"""

from __future__ import annotations

import importlib
import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
INCLUDABLE = {"benchmarks/README.md", "SECURITY.md"}  # only these: a page never reads an arbitrary path
_DIRECTIVE = re.compile(r"<!-- (include|settings): ([\w./:-]+) -->")


def _type_name(annotation: Any) -> str:
    """A short, readable type: ``int``, ``float | None``, ``'fast' | 'default'``, ``list[str]``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        flag = f"{prefix}{name.replace('_', '-')}"
        nested = _nested_model(field.annotation)
        if nested is not None:
            rows += _rows(nested, f"{flag}.")
            continue
        default = field.get_default(call_default_factory=True)
        shown = "empty" if default is None else f"`{default!r}`".replace("|", "\\|")
        about = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `--{flag}` | `{_type_name(field.annotation)}` | {shown} | {about} |")
    return rows


def settings_table(target: str) -> str:
    """``MODULE:CLASS``, or ``MODULE:CLASS:own`` for the fields the class adds to its parent settings model."""
    module, name, *own = target.split(":")
    model = getattr(importlib.import_module(module), name)
    rows = _rows(model)
    if own:
        parent = next(b for b in model.__mro__[1:] if _nested_model(b) and b.model_fields)
        inherited = set(_rows(parent))
        rows = [row for row in rows if row not in inherited]
    head = ["| flag (form field) | type | default | meaning |", "| --- | --- | --- | --- |"]
    return "\n".join(head + rows)


def _replace(match: re.Match[str]) -> str:
    kind, target = match.groups()
    if kind == "include":
        if target not in INCLUDABLE:
            raise ValueError(f"include: {target} is not one of {sorted(INCLUDABLE)}")
        text = (ROOT / target).read_text(encoding="utf-8")
        return re.sub(r"^# .*\n", "", text, count=1)  # the page has its own title
    return settings_table(target)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return _DIRECTIVE.sub(_replace, markdown)
