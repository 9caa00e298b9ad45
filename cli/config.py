"""A flow's settings from the command line: every settings field is a flag (pydantic-settings' CLI), and
``--config FILE`` (YAML or JSON, read safely) supplies values that flags then override. Errors a user can cause
end in one line, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, CliApp, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from trainflow.credentials import move_passwords_to_environment
from trainflow.errors import TrainflowError, clipped
from trainflow.forms import unknown_settings


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path) -> dict[str, Any]:
    """Read settings from a YAML or JSON file.

    Raises:
        TrainflowError: The file is missing, unreadable, not YAML/JSON, or not a mapping.
    """
    try:
        if Path(path).stat().st_size > CONFIG_BYTES:
            raise TrainflowError(f"config file {path} is larger than {CONFIG_BYTES // 1024} KiB: not a settings file")
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)  # no Python tags
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainflowError(f"config file {path}: {exc.strerror or exc}" if isinstance(exc, OSError)
                             else f"config file {path} is not UTF-8 text") from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise TrainflowError(f"config file {path} is not valid {'JSON' if str(path).endswith('.json') else 'YAML'}: "
                             f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise TrainflowError(f"config file {path} must hold a mapping of settings, found {type(data).__name__}")
    if _values_beyond(data, CONFIG_VALUES):
        raise TrainflowError(f"config file {path} expands to more than {CONFIG_VALUES:,} values (YAML aliases "
                             "repeated inside one another): not a settings file")
    return data


CONFIG_BYTES = 1024 * 1024
CONFIG_VALUES = 100_000  # every setting of every stage is a few hundred; a YAML "billion laughs" is billions


def _values_beyond(data: Any, budget: int) -> bool:
    """Whether ``data``, with YAML's shared aliases counted each time they are used, holds more than ``budget``
    values; stops counting at the budget (the expansion itself would take minutes and gigabytes)."""
    stack, seen = [data], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > budget:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def cli_model(settings_cls: type[BaseModel], prog: str) -> type[BaseSettings]:
    """A command-line twin of a flow's settings model, with a ``--config`` flag."""

    class Cli(settings_cls, BaseSettings):  # type: ignore[misc,valid-type]
        model_config = SettingsConfigDict(cli_prog_name=prog, cli_kebab_case=True, cli_implicit_flags=True,
                                          cli_avoid_json=True, nested_model_default_partial_update=True,
                                          cli_exit_on_error=False)  # argparse's usage dump: one line instead
        config: Path | None = Field(None, description="YAML or JSON file of settings; flags given beside it win")

        @classmethod
        def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                       *args: Any, **kwargs: Any) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)  # flags and the config file only: no surprise from environment variables

    Cli.__doc__ = (settings_cls.__doc__ or "") + " --config FILE reads settings from YAML or JSON; flags override it."
    if "dataset" in settings_cls.model_fields:  # --help lists the schemas there are now (never at import)
        from pydantic import create_model

        from trainflow.schema import known_datasets

        field = settings_cls.model_fields["dataset"]
        listed = Field(field.default, description=f"{field.description} (known: {', '.join(known_datasets())})")
        Cli = create_model(Cli.__name__, __base__=Cli, __doc__=Cli.__doc__,  # noqa: N806
                           dataset=(field.annotation, listed))
    return Cli


def parse_settings(settings_cls: type[BaseModel], argv: list[str], prog: str) -> BaseModel:
    """Settings from flags over an optional config file.

    Raises:
        TrainflowError: The config file is unreadable or a value is invalid.
    """
    try:
        parsed = CliApp.run(cli_model(settings_cls, prog), cli_args=argv)
    except ValidationError as exc:
        raise TrainflowError(_one_line(exc, settings_cls)) from None
    except SettingsError as exc:
        raise TrainflowError(_flag_error(str(exc).removeprefix("error parsing CLI: "), settings_cls)) from None
    given = parsed.model_dump(exclude_unset=True, exclude={"config"})
    base = load_config(parsed.config) if parsed.config else {}
    try:
        # a password typed into a URL leaves the settings here: the flow's parameters keep a placeholder
        return settings_cls.model_validate(move_passwords_to_environment(_deep_merge(base, given)))
    except ValidationError as exc:
        raise TrainflowError(_one_line(exc, settings_cls)) from None


def _flag_error(message: str, settings_cls: type[BaseModel]) -> str:
    """argparse's complaint in one line; an unknown flag as ``unknown setting '--train.familys' (did you mean
    '--train.families'?)``, a flag for each unknown one."""
    if not message.startswith("unrecognized arguments:"):
        return f"{clipped(message)} (--help lists the settings)"
    flags = [a for a in message.removeprefix("unrecognized arguments:").split() if a.startswith("--")]
    if not flags:
        return f"{clipped(message)} (a value without its flag?)"
    errors = [{"type": "extra_forbidden", "loc": tuple(f.removeprefix("--").split("=")[0].replace("-", "_").split("."))}
              for f in flags]
    return "; ".join(_first([_as_flags(line) for line in unknown_settings(settings_cls, errors)]))


def _as_flags(line: str) -> str:
    """``unknown setting 'train.n_job' (did you mean 'train.n_jobs'?)`` with the names as flags."""
    parts = line.split("'")
    return "'".join(f"--{part.replace('_', '-')}" if i % 2 else part for i, part in enumerate(parts))


def _one_line(exc: ValidationError, settings_cls: type[BaseModel]) -> str:
    """Unknown keys first, each with a guess at the key meant (``trainflow.forms.unknown_settings``), then the
    other errors."""
    unknown = unknown_settings(settings_cls, exc.errors())
    rest = [clipped(f"{'.'.join(map(str, e['loc']))}: {e['msg']}", 200) for e in exc.errors()
            if e["type"] != "extra_forbidden"]
    return "; ".join([*_first(unknown), *(["invalid settings: " + "; ".join(_first(rest))] if rest else [])])


def _first(items: list[str], shown: int = 5) -> list[str]:
    """At most ``shown`` of ``items``, then how many more (a config file may hold thousands of mistakes)."""
    return items if len(items) <= shown else [*items[:shown], f"and {len(items) - shown} more"]
