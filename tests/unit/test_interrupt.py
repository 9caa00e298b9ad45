"""Ctrl-C ends a command in one line and exit 130, whatever the main thread is doing, and removes the artifact
writes it cut short: a worker process stands in for a flow whose main thread does not let go (a client retrying
against a server the same Ctrl-C stopped); tests/e2e/test_training_flow.py interrupts a real training run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKER = """
import gc, sys, threading, time
import pandas as pd
from cli.run import watch_interrupts
from trainflow.catalog import ArtifactStore

for _ in range(3):  # as main does each time it runs in one process
    watch_interrupts()
gc.collect()
print(sum(t.name == "trainflow-interrupt" for t in threading.enumerate()), "watcher", flush=True)
writer = ArtifactStore(sys.argv[1]).open_table("20261205-120000-abcdef", "split", "train")
writer.write(pd.DataFrame({"a": range(1000)}))
try:  # the test sends the signal once it reads this line: the handler must already be the try's
    print("writing", flush=True)
    while True:
        sum(range(10_000))
except KeyboardInterrupt:
    print("caught, not letting go", flush=True)
    while True:
        time.sleep(0.05)
"""


def test_ctrl_c_ends_a_command_that_does_not_let_go_and_removes_its_unfinished_writes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(root)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert worker.stdout.readline() == "1 watcher\n"  # not one per call, each then spinning on a closed socket
    assert worker.stdout.readline() == "writing\n"
    assert [p.name for p in root.rglob(".tmp-*")] != []  # the table being written
    worker.send_signal(signal.SIGINT)
    out, err = worker.communicate(timeout=60)  # a hang guard: the command ends within about a second
    assert worker.returncode == 130, err
    assert "caught, not letting go" in out  # the main thread had the interrupt and held on
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert list(root.rglob(".tmp-*")) == [] and list(root.rglob("*.parquet")) == []


IN_A_CALLBACK = """
import time, weakref
from cli.run import watch_interrupts

watch_interrupts()
class Thing: pass
def busy(_):  # Python cannot raise out of a weakref's callback: it prints the exception as "ignored"
    print("in the callback", flush=True)
    while True:
        sum(range(10_000))
thing = Thing()
ref = weakref.ref(thing, busy)
del thing
while True:
    time.sleep(0.05)
"""


def test_an_interrupt_landing_in_a_garbage_collector_callback_prints_no_traceback() -> None:
    worker = subprocess.Popen([sys.executable, "-c", IN_A_CALLBACK], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert worker.stdout.readline() == "in the callback\n"
    worker.send_signal(signal.SIGINT)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 130, err
    assert err.strip().splitlines() == ["error: interrupted"], err
