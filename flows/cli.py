"""Command line for any flow: every settings field is a flag, and ``--config FILE`` (YAML or JSON)
supplies values that flags then override. Errors a user can cause end in one line, not a traceback.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, CliApp, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from trainflow.credentials import move_passwords_to_environment
from trainflow.errors import TrainflowError, clipped, printable
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


def print_rows(title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column console table (label, value) with a title; values are printed literally."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # wrapped, never cut with an ellipsis
    for label, value in rows:
        table.add_row(label, escape(str(value)))
    Console().print(table)


def print_paths(paths: dict[str, str]) -> None:
    """Label and path, one a line and never cut, so that a path can be copied whole."""
    width = max(map(len, paths), default=0)
    for label, path in paths.items():
        print(f"{label:<{width}}  {path}")


def compression_rows(report: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The compress stage's variants as console rows: what each scored, weighed and took; the serving one marked."""
    from tasks.compress import MEASURED

    rows = []
    for v in report:
        status = "serving" if v["serving"] else v["status"]
        measured = v["status"] in MEASURED
        rows.append((f"variant {v['variant']}", f"{status}: " + (
            f"{v['metric']} {v['value']:.4f}, {v['size_bytes'] / 1024:,.0f} KiB, p50 {v['p50_ms']:.2f} ms, "
            f"{v['rows_per_s']:,.0f} rows/s" if measured else v["reason"])))
    return rows


def print_summary(summary: dict[str, Any]) -> None:
    """A short, readable table of the training run for the console."""
    estimators = summary.get("estimators", {})

    def shown(family: str) -> str:  # the logistic family is ridge regression for a regression task
        return "logistic (Ridge)" if estimators.get(family) == "Ridge" else family

    rows = [("model", f"{shown(summary['family'])} → {summary['model_name']} v{summary['version']} "
                      f"[{', '.join(summary['aliases'])}]")]
    rows += [(f"test {k}", f"{v:.4f}") for k, v in summary["test_metrics"].items()]
    for family, m in summary.get("test_leaderboard", {}).items():
        if family != summary["family"]:
            rows.append((f"  vs {shown(family)}", ", ".join(f"{k} {v:.4f}" for k, v in m.items())))
    rows += compression_rows(summary.get("compression", []))
    print_rows(f"training run {summary['run_id']} ({summary['dataset']})", rows)
    print_paths({"artifacts": summary["run_dir"], "manifest": summary["manifest_uri"],
                 "model file": summary["model_uri"], "registry": summary["registry_uri"]})


class _UserErrorFilter(logging.Filter):
    """Drop the traceback from Prefect's log of an error the user caused; the message says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], TrainflowError):
            record.exc_info, record.exc_text = None, None
        return True


_last_words: list[str] = []


def _say_last_words() -> None:
    for line in _last_words:
        print(line, file=sys.stderr, flush=True)
    _last_words.clear()


INTERRUPTED = 130  # the exit code of a command ended by Ctrl-C (128 + SIGINT), as shells report it
GRACE_SECONDS = 1.0  # after Ctrl-C, the flow's time to record its crash with the Prefect API before the end
_ENDING = threading.Lock()


def end_interrupted() -> NoReturn:
    """End an interrupted command at once: remove this process's unfinished artifact writes, stop the temporary
    Prefect server it started, say ``error: interrupted`` as the last line, exit 130. Whatever was finished stays
    (artifacts are whole and a later run's cache reuses them; a registry transaction not committed rolls back)."""
    _ENDING.acquire()  # the main thread and the watcher may both get here: the second waits for the exit
    logging.disable(logging.CRITICAL)
    with suppress(Exception):
        from trainflow.catalog import remove_unfinished_writes

        remove_unfinished_writes()
    server = sys.modules.get("prefect.server.api.server")
    for instance in list(getattr(getattr(server, "SubprocessASGIServer", None), "_instances", {}).values()):
        process = getattr(instance, "server_process", None)
        with suppress(Exception):
            process.terminate()
            try:
                process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                process.kill()
    with suppress(Exception):
        sys.stdout.flush()
    print("error: interrupted", file=sys.stderr, flush=True)
    os._exit(INTERRUPTED)


_WATCHER: dict[str, socket.socket] = {}  # the watcher thread's socket pair: one per process


def watch_interrupts() -> None:
    """Make Ctrl-C end the command within ``GRACE_SECONDS``: the main thread gets ``KeyboardInterrupt`` (Prefect
    marks the run crashed; ``main`` then ends it), and a watcher thread ends it anyway when the main thread is
    stuck reporting to a server the same Ctrl-C stopped. The watcher hears of the signal from the handler and,
    while the main thread is held in a long native call, through Python's wakeup file descriptor, written from
    the C signal handler (an asyncio loop of the main thread may take that descriptor over, hence both).

    One watcher and one socket pair per process, however often ``main`` runs in it (each call sets the handler
    and the wakeup descriptor again): a pair per call left the earlier watchers reading a closed socket, each
    spinning on its empty reads."""
    if not _WATCHER:
        receive, send = socket.socketpair()
        send.setblocking(False)
        _WATCHER.update(receive=receive, send=send)

        def watch() -> None:
            while signal.SIGINT not in (caught := receive.recv(64)):  # the numbers of the signals caught
                if not caught:  # the other end closed: nothing more can come, and an empty read would spin
                    return
            time.sleep(GRACE_SECONDS)
            end_interrupted()

        threading.Thread(target=watch, name="trainflow-interrupt", daemon=True).start()
    send, tell = _WATCHER["send"], bytes([signal.SIGINT])

    def on_sigint(signum: int, frame: object) -> None:
        logging.disable(logging.CRITICAL)  # no library logs its traceback of the interrupt on the way out
        with suppress(OSError):
            send.send(tell)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    signal.set_wakeup_fd(send.fileno(), warn_on_full_buffer=False)


def main(flow_fn: Callable[[BaseModel], dict[str, Any]], settings_cls: type[BaseModel],
         argv: list[str] | None = None, prog: str | None = None,
         printer: Callable[[dict[str, Any]], None] = print_summary) -> int:
    """Parse settings, check them, run the flow, print its summary; return the exit code (2 for a user error).

    Settings that ``check()`` can refuse without running anything (unknown schema, missing file) are refused
    before Prefect starts its temporary server. The one-line error of a failed run is printed at exit, after
    the temporary server's shutdown lines, so that it is the last line the command prints.
    """
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _UserErrorFilter) for f in logger.filters):  # once, however often main runs
            logger.addFilter(_UserErrorFilter())
    prog = prog or f"python -m flows.{flow_fn.name if hasattr(flow_fn, 'name') else flow_fn.__name__}"
    atexit.unregister(_say_last_words)
    atexit.register(_say_last_words)  # before Prefect registers the server's stop, so it runs after it
    if argv is None:  # a command, not a call from Python
        watch_interrupts()
    try:
        settings = parse_settings(settings_cls, sys.argv[1:] if argv is None else argv, prog)
        if hasattr(settings, "check"):
            settings.check()
        summary = flow_fn(settings)
    except TrainflowError as exc:
        _last_words.append(f"error: {printable(str(exc))}")
        if argv is not None:  # called from Python (tests): say it now
            _say_last_words()
        return 2
    except KeyboardInterrupt:
        if argv is not None:
            print("error: interrupted", file=sys.stderr, flush=True)
            return INTERRUPTED
        end_interrupted()
    printer(summary)
    return 0
