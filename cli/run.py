"""Running a flow as a command: settings parsed and checked before Prefect starts, the flow run, its summary
printed; a user's error is the last line and exit code 2, Ctrl-C is ``error: interrupted`` and exit 130."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, NoReturn

from pydantic import BaseModel

from cli.config import parse_settings
from cli.printers import print_summary
from trainflow.errors import TrainflowError, printable


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


def _quiet_interrupts(unraisable: Any) -> None:
    """``sys.unraisablehook`` once interrupted: the ``KeyboardInterrupt`` raised while the main thread ran a
    callback Python cannot raise from (a weakref's, during garbage collection) is dropped, not printed as an
    "Exception ignored" traceback; anything else goes to the default hook."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


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
        sys.unraisablehook = _quiet_interrupts  # nor Python, where the interrupt lands in a garbage collector callback
        with suppress(OSError):
            send.send(tell)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    signal.set_wakeup_fd(send.fileno(), warn_on_full_buffer=False)


@contextmanager
def _heartbeats_where_watched() -> Iterator[None]:
    """Flow-run heartbeats only where a server outlives this process: they let a lasting server mark a run whose
    process died as crashed, and each flow's end waits up to a second for its heartbeat thread to wake. Without
    ``PREFECT_API_URL`` the run's server is the temporary one, which stops with this process: no heartbeats."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        yield


def run_flow(flow_fn: Callable[[BaseModel], dict[str, Any]], settings_cls: type[BaseModel],
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
    prog = prog or f"trainflow {flow_fn.name if hasattr(flow_fn, 'name') else flow_fn.__name__}"
    atexit.unregister(_say_last_words)
    atexit.register(_say_last_words)  # before Prefect registers the server's stop, so it runs after it
    if argv is None:  # a command, not a call from Python
        watch_interrupts()
    try:
        settings = parse_settings(settings_cls, sys.argv[1:] if argv is None else argv, prog)
        if hasattr(settings, "check"):
            settings.check()
        with _heartbeats_where_watched():
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
