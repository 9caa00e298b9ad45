"""`trainflow ui` (`make ui`): start a Prefect server on 127.0.0.1 and serve the project's deployments, in one command.

Prints the UI's address; Ctrl-C stops both. The server keeps its database in PREFECT_HOME
(the project's .prefect/ under make).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(api: str, timeout: float = 120) -> None:
    """Block until the Prefect API answers /health."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the Prefect server did not answer at {api} within {timeout:.0f} s")


def run_ui(port: int = 4200) -> None:
    """``trainflow ui``: the Prefect server on 127.0.0.1:``port`` and every deployment served from here, until
    Ctrl-C."""
    api = f"http://127.0.0.1:{port}/api"
    # the UI calls the API address in its settings (port 4200 by default), not the --port given to the server
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                               str(port)], env={**os.environ, "PREFECT_UI_API_URL": api})
    try:
        wait_healthy(api)
        print(f"\nPrefect UI: http://127.0.0.1:{port}  (deployments served from here; Ctrl-C stops)\n", flush=True)
        env = {**os.environ, "PREFECT_API_URL": api}
        subprocess.run([sys.executable, "-m", "cli.main", "deployments"], env=env, check=False)
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        server.wait(30)
