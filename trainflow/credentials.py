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
# query parameters that carry a secret (psycopg's password=, ODBC's pwd=, a token): masked and moved as the
# password in a URL's user part is
SECRET_PARAMS = ("password", "passwd", "pwd", "pass", "sslpassword", "token", "access_token", "auth_token",
                 "api_key", "apikey", "secret", "client_secret", "secret_key", "secret_access_key",
                 "aws_secret_access_key", "sas_token", "sig")
_SECRET_PARAM = re.compile(r"(?P<key>[?&;](?:" + "|".join(SECRET_PARAMS) + r")=)(?P<value>[^&;#]*)", re.IGNORECASE)
# the user part of any scheme://user:password@... string, parsable as a URL or not (a bad port, say): the password
# is everything up to the last "@" before the path, so a password holding "@" is masked whole
_USERINFO = re.compile(r"^(?P<pre>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@]*:)(?P<value>[^/?#]*)(?P<at>@)")


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
    query = url.find("?", start)
    head, tail = (url, "") if query < 0 else (url[:query], url[query:])
    tail = PLACEHOLDER.sub(lambda m: quote(fill(m), safe=""), tail)  # a query parameter's value: encoded too
    if end < 0 or "/" in url[start:end] or (0 <= query < end):
        return PLACEHOLDER.sub(fill, head) + tail
    return head[:start] + PLACEHOLDER.sub(lambda m: quote(fill(m), safe=""), head[start:end]) + \
        PLACEHOLDER.sub(fill, head[end:]) + tail


def _user_password(value: str) -> re.Match | None:
    """Where the password of a ``scheme://user:password@host`` string is, whether SQLAlchemy can parse it or not."""
    if "://" not in value or value.startswith("file://"):
        return None
    head = value.split("?", 1)[0]
    at = head.rfind("@")  # the last "@" of the part before the query: a password may hold "@" unencoded
    match = _USERINFO.match(head[:at + 1]) if at > 0 else None
    return match if match is not None and match.group("value") else None


def mask(value: str) -> str:
    """``value`` with the secrets of a URL shown as ``***``: the password of its user part (SQLAlchemy's rendering
    when it parses, the same characters masked when it does not: a bad port) and every ``SECRET_PARAMS`` query
    parameter. Other strings unchanged."""
    if "://" not in value:
        return value
    url = _url(value)
    if url is not None and url.password is not None and "?" not in value:
        value = url.render_as_string(hide_password=True)
    elif (match := _user_password(value)) is not None:
        value = value[:match.start("value")] + MASK + value[match.end("value"):]
    return _SECRET_PARAM.sub(lambda m: m.group("key") + (m.group("value") and MASK), value)


def mask_all(obj: Any) -> Any:
    """``obj`` (settings as JSON: dicts, lists, strings) with every database URL's password masked."""
    if isinstance(obj, dict):
        return {k: mask_all(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [mask_all(v) for v in obj]
    return mask(obj) if isinstance(obj, str) else obj


def redact(text: str, *urls: str | None) -> str:
    """``text`` (a driver's error message) with the passwords of ``urls``, given or resolved, replaced by ``***``."""
    from urllib.parse import unquote

    for url in filter(None, urls):
        for candidate in {url, _safe_resolve(url)}:
            secrets = [m.group("value") for m in _SECRET_PARAM.finditer(candidate)]
            parsed = _url(candidate)
            if parsed is not None and parsed.password:
                secrets.append(str(parsed.password))
            elif (match := _user_password(candidate)) is not None:
                secrets.append(match.group("value"))
            for secret in filter(None, secrets):
                for form in {secret, unquote(secret)}:
                    text = text.replace(form, MASK)
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

    def placeholder(secret: str) -> str:
        nonlocal count
        count += 1
        name = f"{prefix}_{count}"
        os.environ[name] = secret
        return "${" + name + "}"

    def move(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        if not isinstance(value, str) or "://" not in value or value.startswith("file://"):
            return value
        from urllib.parse import unquote

        # each secret moves as typed, percent-decoded: resolve() encodes it again where it goes back
        value = _SECRET_PARAM.sub(lambda m: m.group("key") + placeholder(unquote(m.group("value")))
                                  if m.group("value") and not PLACEHOLDER.fullmatch(m.group("value")) else m.group(0),
                                  value)
        match = _user_password(value)
        if match is None or PLACEHOLDER.fullmatch(match.group("value")):
            return value
        url = _url(value)
        secret = str(url.password) if url is not None and url.password is not None else unquote(match.group("value"))
        return value[:match.start("value")] + placeholder(secret) + value[match.end("value"):]

    return move(obj)
