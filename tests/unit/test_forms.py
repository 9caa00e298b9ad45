"""The Prefect UI's form, Quick run and the command line give a run the same settings."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema

from flows.cli import parse_settings
from flows.inference import inference
from flows.training import TrainingSettings, effective_settings, training
from trainflow.schema import known_datasets, load_schema

UNSET = object()


def form_values(prop: dict[str, Any], defs: dict[str, Any], value: Any = UNSET) -> Any:
    """What the UI's custom-run form submits when the user changes nothing: it starts from the deployment's
    parameters and gives every property that has a default its default, nested objects included; inputs
    left empty are left out."""
    while "$ref" in prop or "allOf" in prop:
        ref = prop["$ref"] if "$ref" in prop else prop["allOf"][0]["$ref"]
        prop = {**defs[ref.rsplit("/", 1)[-1]], **{k: v for k, v in prop.items() if k not in ("$ref", "allOf")}}
    if "properties" in prop:
        out = dict(value) if isinstance(value, dict) else {}
        for name, sub in prop["properties"].items():
            filled = form_values(sub, defs, out.get(name, UNSET))
            if filled is not UNSET:
                out[name] = filled
        return out
    return value if value is not UNSET else prop.get("default", UNSET)


def submitted(flow: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    schema = parameter_schema(flow).model_dump()
    return form_values(schema, schema.get("definitions", {}), parameters)


@pytest.mark.parametrize("dataset", ["digits", "fine_food", "air_passengers"])
def test_form_quick_run_and_command_line_train_the_same(dataset: str) -> None:
    deployment_parameters = {"settings": {"dataset": dataset}}
    quick = training.validate_parameters(deployment_parameters)["settings"]
    form = training.validate_parameters(submitted(training, deployment_parameters))["settings"]
    cli = parse_settings(TrainingSettings, ["--dataset", dataset], "python -m flows.training")
    assert effective_settings(form) == effective_settings(quick) == effective_settings(cli)
    nn = effective_settings(form)["train"]["nn"]
    assert {k: nn[k] for k in load_schema(dataset).nn} == load_schema(dataset).nn  # the schema's values won


def test_a_value_typed_into_the_form_still_wins_over_the_schema() -> None:
    values = submitted(training, {"settings": {"dataset": "digits", "train": {"nn": {"batch_size": 7}}}})
    settings = training.validate_parameters(values)["settings"]
    assert effective_settings(settings)["train"]["nn"]["batch_size"] == 7


def test_the_form_is_clean() -> None:
    schema = parameter_schema(training).model_dump()
    defs = schema["definitions"]
    root = defs["TrainingSettings"]["properties"]
    assert root["dataset"]["enum"] == known_datasets() and "adult" in root["dataset"]["enum"]
    assert "default" not in root["artifacts_root"]  # nothing of the machine that registered the deployment
    for name, model in defs.items():
        for field, prop in model.get("properties", {}).items():
            assert {"type": "null"} not in prop.get("anyOf", []), f"{name}.{field}: drawn as 'Property is type None'"
            assert not re.search(r"<[A-Za-z_/]", prop.get("description", "")), f"{name}.{field}: the UI drops <tags>"
    assert "default" not in defs["NNChoices"]["properties"]["batch_size"]
    inference_root = parameter_schema(inference).model_dump()["definitions"]["InferenceSettings"]["properties"]
    assert "default" not in inference_root["artifacts_root"] and "enum" in inference_root["dataset"]
