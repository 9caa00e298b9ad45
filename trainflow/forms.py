"""How settings models look in the Prefect UI's parameter form, and optional twins of settings blocks.

The UI fills every field that has a default and sends it back as if the user had typed it, and it draws
an optional field (``int | None``) as a choice between the type and a "None" panel. Settings whose
``None`` means "the dataset schema's value" therefore show as plain empty inputs (no null branch, no
default): an input left empty is left out of the submitted parameters, so the schema's value wins,
exactly as on the command line and in Quick run.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from trainflow.schema import known_datasets


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
    """A settings block that the Prefect UI shows as a clean form (see the module docstring)."""

    model_config = ConfigDict(json_schema_extra=drop_null_branches)


def optional_twin(model: type[BaseModel], name: str, doc: str) -> type[FormModel]:
    """A model with ``model``'s fields, each optional with no value: set fields override, unset ones defer.

    Constraints and descriptions carry over; the description gains the built-in default.
    """
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        default = info.get_default(call_default_factory=True)
        fallback = "if any" if default is None else f"else {default!r}"
        twin = FieldInfo.merge_field_infos(info, default=None, default_factory=None,
                                           description=f"{info.description} (empty: the dataset schema's, {fallback})")
        fields[field_name] = (info.annotation | None, twin)
    return create_model(name, __base__=FormModel, __doc__=doc, __module__=model.__module__, **fields)
