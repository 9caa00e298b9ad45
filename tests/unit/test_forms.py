"""The Prefect UI's form, Quick run and the command line give a run the same settings."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema

from cli.config import parse_settings
from flows.inference import InferenceSettings, inference
from flows.monitoring import MonitoringSettings, monitoring
from flows.retraining import RetrainingSettings, retraining
from flows.training import TrainingSettings, effective_settings, training
from trainflow.presets import with_preset
from trainflow.schema import known_datasets, load_schema

UNSET = object()


def form_values(prop: dict[str, Any], defs: dict[str, Any], value: Any = UNSET) -> Any:
    """What the UI's custom-run form submits when the user changes nothing: it starts from the deployment's
    parameters and gives every property that has a default its default, nested objects included; a boolean is
    drawn as an on/off toggle with no empty state, so one without a default is submitted ``false``; other
    inputs left empty are left out."""
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
    if value is UNSET and prop.get("type") == "boolean":
        return prop.get("default", False)
    return value if value is not UNSET else prop.get("default", UNSET)


def submitted(flow: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    schema = parameter_schema(flow).model_dump()
    return form_values(schema, schema.get("definitions", {}), parameters)


@pytest.mark.parametrize("preset", ["fast", "default", "best"])
@pytest.mark.parametrize("dataset", known_datasets())
def test_form_quick_run_and_command_line_train_the_same(dataset: str, preset: str) -> None:
    deployment_parameters = {"settings": {"dataset": dataset, "preset": preset}}
    quick = training.validate_parameters(deployment_parameters)["settings"]
    form = training.validate_parameters(submitted(training, deployment_parameters))["settings"]
    cli = parse_settings(TrainingSettings, ["--dataset", dataset, "--preset", preset], "python -m flows.training")
    schema = load_schema(dataset)

    def used(settings: TrainingSettings) -> dict:  # with the preset's choices filled in, as the flow runs it
        return effective_settings(with_preset(settings, schema), schema)

    assert used(form) == used(quick) == used(cli)
    nn = used(form)["train"]["nn"]
    assert {k: nn[k] for k in schema.nn} == schema.nn  # the schema's values won
    assert used(form)["compress"]["enabled"] == ("off" if preset == "fast" else "on")
    assert used(form)["train"]["bag"] == ("on" if preset == "best" and schema.modality == "tabular" else
                                          "off" if schema.modality == "tabular" else "auto")


@pytest.mark.parametrize("flow, settings_cls, parameters", [
    (inference, InferenceSettings, {"settings": {"dataset": "adult", "source": "data/sample/adult.parquet"}}),
    (monitoring, MonitoringSettings, {"settings": {"dataset": "adult", "source": "data/sample/adult.parquet"}}),
    (retraining, RetrainingSettings, {"settings": {"batches": "data/batches", "training": {"dataset": "wine"}}}),
])
def test_the_other_flows_forms_mean_what_their_command_lines_do(flow: Any, settings_cls: Any,
                                                                parameters: dict) -> None:
    quick = flow.validate_parameters(parameters)["settings"]
    form = flow.validate_parameters(submitted(flow, parameters))["settings"]
    argv = [f"--{'.'.join(path)}={value}" for path, value in _leaves(parameters["settings"])]
    cli = parse_settings(settings_cls, argv, "trainflow")
    assert form.model_dump() == quick.model_dump() == cli.model_dump()


def _leaves(values: dict, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for key, value in values.items():
        out += _leaves(value, (*path, key)) if isinstance(value, dict) else [((*path, key), value)]
    return out


def test_a_toggle_left_alone_keeps_the_preset_and_one_set_wins() -> None:
    schema = load_schema("adult")
    for value, expected in (("auto", "on"), ("off", "off"), (False, "off"), (True, "on")):
        parameters = {"settings": {"dataset": "adult", "preset": "default", "compress": {"enabled": value}}}
        form = training.validate_parameters(submitted(training, parameters))["settings"]
        assert with_preset(form, schema).compress.enabled == expected


def test_an_unknown_key_is_refused_wherever_it_comes_from(tmp_path) -> None:
    from trainflow.errors import TrainflowError

    with pytest.raises(Exception, match="familys"):  # a form payload: Prefect's parameter validation
        training.validate_parameters({"settings": {"train": {"familys": ["logistic"]}}})
    config = tmp_path / "settings.yaml"
    config.write_text("preset: fast\ndatset: wine\ntrain: {familys: [logistic]}\n")
    with pytest.raises(TrainflowError) as config_error:
        parse_settings(TrainingSettings, ["--config", str(config)], "trainflow train")
    assert str(config_error.value) == ("unknown setting 'train.familys' (did you mean 'train.families'?); "
                                       "unknown setting 'datset' (did you mean 'dataset'?)")
    with pytest.raises(TrainflowError) as flag_error:
        parse_settings(TrainingSettings, ["--datset", "wine"], "trainflow train")
    assert str(flag_error.value) == "unknown setting '--datset' (did you mean '--dataset'?)"
    with pytest.raises(TrainflowError, match="^config file .*missing.yaml: No such file or directory$"):
        parse_settings(TrainingSettings, ["--config", str(tmp_path / "missing.yaml")], "trainflow train")


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
