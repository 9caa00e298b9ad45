"""Credentials in database and object store URLs: resolved only where a connection is made, masked everywhere else.

A URL may name its secret instead of holding it, so that a flag, a UI form, a Prefect parameter or a
deployment file never carries one:

    postgresql+psycopg://trainer:${PGPASSWORD}@db.internal/warehouse      # an environment variable
    postgresql+psycopg://trainer:${secret:warehouse-password}@db.internal/warehouse   # a Prefect Secret block

``resolve`` fills the placeholders in just before ``create_engine`` (or ``pyarrow.fs.FileSystem.from_uri`` for
an artifacts root such as ``s3://KEY_ID:${AWS_SECRET_ACCESS_KEY}@bucket/x``); nothing else ever sees the result.
``mask`` shows a URL with its password as ``***`` (SQLAlchemy's ``render_as_string(hide_password=True)``)
for errors, logs, artifacts, the manifest, the lineage and the registry. On the command line, a URL typed
with a literal password is rewritten before the flow starts (``move_passwords_to_environment``): the
password goes into this process's environment and the URL keeps a placeholder naming it.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import quote

from trainflow.errors import TrainflowError

PLACEHOLDER = re.compile(r"\$\{(?:(secret):)?([A-Za-z_][A-Za-z0-9_.-]*)\}")
MASK = "***"


def _url(value: str) -> Any:
    """The SQLAlchemy URL in ``value``, or None when it is not one."""
    if "://" not in value or value.startswith("file://"):
        return None
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(value)
    except (sa.exc.ArgumentError, ValueError):
        return None


def resolve(url: str) -> str:
    """``url`` with each ``${NAME}`` (environment) and ``${secret:NAME}`` (Prefect Secret block) filled in.

    Raises:
        TrainflowError: A named variable is unset or a Secret block does not exist (naming it, not its value).
    """
    def fill(match: re.Match) -> str:
        kind, name = match.groups()
        if kind == "secret":
            from prefect.blocks.system import Secret

            try:
                return str(Secret.load(name).get())
            except ValueError as exc:
                raise TrainflowError(f"the Prefect Secret block '{name}' named in a URL does not exist") from exc
        if name not in os.environ:
            raise TrainflowError(f"the environment variable {name} named in a URL is not set")
        return os.environ[name]

    # in the user and password part a value is percent-encoded (a password may hold '@' or '/'); elsewhere
    # (a host, a database path) it goes in as it is
    start = url.find("://") + 3 if "://" in url else 0
    end = url.find("@", start)
    if end < 0 or "/" in url[start:end]:
        return PLACEHOLDER.sub(fill, url)
    return url[:start] + PLACEHOLDER.sub(lambda m: quote(fill(m), safe=""), url[start:end]) + \
        PLACEHOLDER.sub(fill, url[end:])


def mask(value: str) -> str:
    """``value`` with the password of a database URL shown as ``***`` (other strings unchanged)."""
    url = _url(value)
    if url is None or url.password is None:
        return value
    return url.render_as_string(hide_password=True)


def mask_all(obj: Any) -> Any:
    """``obj`` (settings as JSON: dicts, lists, strings) with every database URL's password masked."""
    if isinstance(obj, dict):
        return {k: mask_all(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [mask_all(v) for v in obj]
    return mask(obj) if isinstance(obj, str) else obj


def redact(text: str, *urls: str | None) -> str:
    """``text`` (a driver's error message) with the passwords of ``urls``, given or resolved, replaced by ``***``."""
    for url in filter(None, urls):
        for candidate in {url, _safe_resolve(url)}:
            parsed = _url(candidate)
            if parsed is not None and parsed.password:
                text = text.replace(str(parsed.password), MASK)
    return text


def _safe_resolve(url: str) -> str:
    try:
        return resolve(url)
    except TrainflowError:
        return url


def move_passwords_to_environment(obj: Any, prefix: str = "TRAINFLOW_PASSWORD") -> Any:
    """``obj`` with each literal password in a database URL moved into this process's environment.

    The URL keeps ``${TRAINFLOW_PASSWORD_<n>}`` in its place, so the flow's parameters, its lineage and
    everything it writes hold the placeholder; ``resolve`` reads the value back when it connects.
    """
    count = 0

    def move(value: Any) -> Any:
        nonlocal count
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        url = _url(value) if isinstance(value, str) else None
        if url is None or url.password is None or PLACEHOLDER.fullmatch(str(url.password)):
            return value
        count += 1
        name = f"{prefix}_{count}"
        os.environ[name] = str(url.password)
        return url.set(password="PLACEHOLDER").render_as_string(hide_password=False).replace(
            "PLACEHOLDER", "${" + name + "}", 1)

    return move(obj)
