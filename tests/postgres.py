"""A throwaway PostgreSQL cluster for the tests that need one: ``initdb`` in a temporary folder, ``pg_ctl`` on a
free loopback port, trust authentication for 127.0.0.1 alone, removed when the session ends. PostgreSQL refuses
to run as root, so under root its programs run as the ``postgres`` user (Debian's package creates it).
``.ci/run`` installs the server programs where they are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deployments.ui import free_port


def pg_program(name: str) -> str | None:
    """The path of a PostgreSQL server program (``initdb``, ``pg_ctl``): on the PATH, else Debian's
    ``/usr/lib/postgresql/VERSION/bin`` (the newest); None where none is installed."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3])
                        if p.parts[-3].isdigit() else 0)
    return str(candidates[-1]) if candidates else None


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a cluster; yields its server URL without a database (``postgresql+psycopg://postgres@HOST:PORT``)."""
    initdb, pg_ctl = pg_program("initdb"), pg_program("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    home = Path(tempfile.mkdtemp(prefix="trainflow-pg-"))  # /tmp, not pytest's root-only folder: the owner reads it
    data = home / "data"
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    port = free_port()
    try:
        subprocess.run(_as_owner([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                  "--no-sync"]), check=True, capture_output=True, timeout=120)
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={home} -c fsync=off"
        subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-o", options, "-l", str(home / "server.log"), "-w",
                                  "-t", "60", "start"]), check=True, capture_output=True, timeout=120)
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
        finally:
            subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True,
                           timeout=60)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def new_database(server: str) -> str:
    """A new, empty database on the cluster; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
