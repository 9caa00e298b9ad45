"""How settings models look in the Prefect UI's parameter form, and optional twins of settings blocks.

The UI fills every field that has a default and sends it back as if the user had typed it, and it draws
an optional field (``int | None``) as a choice between the type and a "None" panel. Settings whose
``None`` means "the dataset schema's value" therefore show as plain empty inputs (no null branch, no
default): an input left empty is left out of the submitted parameters, so the schema's value wins,
exactly as on the command line and in Quick run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from trainflow.errors import clipped
from trainflow.schema import known_datasets

NAME_CHARS = 60  # characters of an unknown setting's name that an error line shows


def _as_toggle(value: Any) -> Any:
    """``True``/``False``/``None`` and their words (``--compress.enabled false``, a config file or a caller from
    before toggles) as ``on``/``off``/``auto``."""
    if value is None or isinstance(value, bool):
        return {True: "on", False: "off", None: "auto"}[value]
    words = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}
    return words.get(value.lower(), value) if isinstance(value, str) else value


# A switch whose unset state means something (the preset's or the schema's choice). The UI draws a bool as an
# on/off toggle with no empty state and submits ``false`` when untouched, which would override the preset: a
# choice of three draws as a list whose untouched value is ``auto``.
Toggle = Annotated[Literal["auto", "on", "off"], BeforeValidator(_as_toggle)]


def is_on(value: Any) -> bool:
    """A ``Toggle`` (or a bool) switched on; ``auto`` is off where nothing decided it."""
    return value is True or value == "on"


def drop_null_branches(schema: dict[str, Any]) -> None:
    """JSON-schema hook: draw each optional property as its non-null type, empty when left unset."""
    for prop in schema.get("properties", {}).values():
        variants = prop.get("anyOf")
        if not variants or {"type": "null"} not in variants:
            continue
        rest = [v for v in variants if v != {"type": "null"}]
        del prop["anyOf"]
        if len(rest) == 1:
            prop.update(rest[0])
        else:
            prop["anyOf"] = rest
        if prop.get("default", ...) is None:
            del prop["default"]


def dataset_field(default: str, description: str) -> Any:
    """A ``dataset`` field that the form offers as a choice of the schemas in ``schemas/`` (listed when the
    form's schema is built, e.g. when deployments are served; the command line takes any name)."""
    return Field(default, description=description, json_schema_extra=lambda s: s.update(enum=known_datasets()))


class FormModel(BaseModel):
    """A settings block that the Prefect UI shows as a clean form (see the module docstring). Unknown keys are
    refused (a misspelt key in a config file or a form payload would otherwise be dropped without a word):
    ``unknown_settings`` words the error."""

    model_config = ConfigDict(json_schema_extra=drop_null_branches, extra="forbid")


def unknown_settings(model: type[BaseModel], errors: list[dict[str, Any]]) -> list[str]:
    """``unknown setting 'train.familys' (did you mean 'train.families'?)`` for each of pydantic's
    ``extra_forbidden`` errors against ``model``, the guess from the names known at that place."""
    import difflib

    out = []
    for error in errors:
        if error["type"] != "extra_forbidden":
            continue
        *path, key = [str(part) for part in error["loc"]]
        here: Any = model
        for part in path:  # the settings block the key was found in
            field = getattr(here, "model_fields", {}).get(part)
            annotation = getattr(field, "annotation", None)
            here = next((t for t in (annotation, *getattr(annotation, "__args__", ())) if
                         isinstance(t, type) and issubclass(t, BaseModel)), None)
        known = list(getattr(here, "model_fields", {}))
        guess = difflib.get_close_matches(key, known, n=1)
        dotted = clipped(".".join([*path, key]), NAME_CHARS)  # a key is untrusted text: any length, any character
        out.append(f"unknown setting '{dotted}'" + (f" (did you mean '{'.'.join([*path, guess[0]])}'?)" if guess
                                                    else ""))
    return out


def optional_twin(model: type[BaseModel], name: str, doc: str) -> type[FormModel]:
    """A model with ``model``'s fields, each optional with no value (a bool: a ``Toggle``, ``auto``): set fields
    override, unset ones defer (``set_values``).

    Constraints and descriptions carry over; the description gains the built-in default.
    """
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        default = info.get_default(call_default_factory=True)
        fallback = "if any" if default is None else f"else {default!r}"
        if info.annotation is bool:  # drawn as a toggle, a bool could not be left empty: auto, on or off
            fallback = f"else {'on' if default else 'off'}"
            twin = FieldInfo.merge_field_infos(info, default="auto", default_factory=None,
                                               description=f"{info.description} (auto: the dataset schema's, "
                                                           f"{fallback})")
            fields[field_name] = (Toggle, twin)
            continue
        twin = FieldInfo.merge_field_infos(info, default=None, default_factory=None,
                                           description=f"{info.description} (empty: the dataset schema's, {fallback})")
        fields[field_name] = (info.annotation | None, twin)
    return create_model(name, __base__=FormModel, __doc__=doc, __module__=model.__module__, **fields)


def set_values(twin: BaseModel) -> dict[str, Any]:
    """The fields an ``optional_twin`` instance sets, toggles as bools: what overrides the schema's values."""
    out = {}
    for name, value in twin.model_dump(exclude_none=True).items():
        toggle = type(twin).model_fields[name].annotation == Literal["auto", "on", "off"]
        if not (toggle and value == "auto"):
            out[name] = value == "on" if toggle else value
    return out
